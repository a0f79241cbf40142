"""The `sparse` marker (tests/conftest.py) runs a test against the full and the sparse pvesim."""

import pytest

pytestmark = pytest.mark.sparse


@pytest.fixture
def sim_through_a_fixture(pvesim):
    return pvesim


def test_marked_test_runs_once_per_mode(pvesim, request):
    mode = request.node.callspec.params["pvesim"].mode
    assert pvesim.admin("GET", "/sparse") == {"sparse": mode == "sparse"}


def test_fixtures_built_on_pvesim_get_the_same_mode(sim_through_a_fixture, pvesim, pvesim_sparse, request):
    mode = request.node.callspec.params["pvesim"].mode
    assert sim_through_a_fixture.url == pvesim.url
    assert (pvesim.url == pvesim_sparse.url) == (mode == "sparse")

