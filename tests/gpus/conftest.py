from tests.fixtures import pve, sim_cluster  # noqa: F401
from tests.guests.test_create import no_worker  # noqa: F401  (operations saved, not sent to Celery)
