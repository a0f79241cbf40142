from tests.fixtures import pve, sim_cluster  # noqa: F401
