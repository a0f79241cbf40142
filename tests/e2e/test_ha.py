"""Browser: the HA page follows a node failure as it happens (node lost, then the timeline of fence,
recovery and where each guest restarted, with why), without a reload and without console errors."""

from pathlib import Path

import pytest

from apps.ha.services import ha_refresh
from tests.e2e.test_dashboard import beat, demo_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_ha_page_shows_a_node_failure_live(operator_page, live_server, demo_cluster, beat, pvesim):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    page = operator_page
    errors = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ha_refresh(cluster=demo_cluster)  # rules: the page explains placements by them
    page.set_viewport_size({"width": 1360, "height": 1000})
    page.goto(f"{live_server.url}/ha/")
    panel = f"#ha-cluster-{demo_cluster.pk}"
    page.wait_for_selector(panel)
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    assert "→ pve2" in page.inner_text(panel)  # the prediction for vm:100, before anything happens
    page.evaluate("window.__noReload = true")

    pvesim.admin("POST", "/local-node", node="pve2")  # the API answers from a node that survives
    pvesim.admin("POST", "/time-scale", scale=60)
    try:
        pvesim.admin("POST", "/nodes/pve1/power", state="off")
        page.wait_for_selector(f"{panel} .ha-node.lost", timeout=30_000)
        page.wait_for_function(f"() => document.querySelector('{panel} .timeline')?.textContent"
                               ".includes('vm:100 recovered on pve2')", timeout=45_000)
    finally:
        pvesim.admin("POST", "/time-scale", scale=20)
    timeline = page.inner_text(f"{panel} .timeline")
    assert "fenced with its node pve1" in timeline and "web-prefers-pve1" in timeline
    page.wait_for_function(f"() => document.querySelector('{panel} .ha-node.lost').textContent"
                           ".includes('its HA guests were recovered elsewhere')")
    assert page.evaluate("window.__noReload") is True  # swapped in over the websocket, not reloaded
    page.screenshot(path=str(ARTIFACTS / "ha-failover.png"), full_page=True)
    assert errors == []
