from tests.storage.fixtures import pve, sim_cluster  # noqa: F401
