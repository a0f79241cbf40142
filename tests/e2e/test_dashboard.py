"""Browser: the datacenter dashboard follows Proxmox live. Real pvesim, Celery worker, ASGI server;
a thread plays Celery beat (the due-task every second), so the sync cadence is the product's own."""

import threading
from pathlib import Path

import pytest

from apps.nodes import sync
from apps.nodes.models import Node
from apps.nodes.services import cluster_create
from apps.nodes.tasks import cluster_sync_due
from tests.nodes.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def beat(celery_worker):
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            cluster_sync_due.delay()
            stop.wait(1.0)

    thread = threading.Thread(target=loop, name="test-beat", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


@pytest.fixture
def demo_cluster(pvesim, operator):
    pvesim.reset()
    cluster = cluster_create(user=operator, name="demo", api_url=pvesim.url, token_id=pvesim.token_id,
                             token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    # Registration queued a first sync on the worker; run one here too (skipped if that one holds the lock).
    sync.run_cycle(cluster.pk)
    wait_for(lambda: Node.objects.filter(cluster=cluster).count() == 3, message="first sync")
    yield cluster
    pvesim.reset()


def test_dashboard_shows_a_node_going_offline_without_reload(operator_page, live_server, demo_cluster, pvesim, beat):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(f"{live_server.url}/")
    card = page.locator(f"#cluster-card-{demo_cluster.pk}")
    card.wait_for()
    assert card.locator(".node-list li[data-node]").count() == 3
    for name in ("pve1", "pve2", "pve3"):
        assert card.locator(f'li[data-node="{name}"]').get_attribute("data-status") == "online"
    assert "quorate" in card.inner_text()
    page.wait_for_selector("#live[hx-ext]", state="attached")
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    page.evaluate("window.__noReload = true")
    page.screenshot(path=str(ARTIFACTS / "dashboard-online.png"), full_page=True)

    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    page.wait_for_selector(f'#cluster-card-{demo_cluster.pk} li[data-node="pve3"][data-status="offline"]',
                           timeout=30_000)
    assert page.evaluate("window.__noReload") is True  # swapped in over the websocket, not reloaded
    assert Node.objects.get(cluster=demo_cluster, name="pve3").status == "offline"
    assert "Offline" in card.locator('li[data-node="pve3"]').inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard-pve3-offline.png"), full_page=True)


def test_pages_render_for_screenshots(operator_page, live_server, demo_cluster):
    """Cluster, node list, node detail and registration pages (screenshots for a human look)."""
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 900})
    node = Node.objects.get(cluster=demo_cluster, name="pve1")
    from apps.nodes.rrd import refresh_rrd

    assert refresh_rrd(node.pk)  # what the worker does while the node page is watched
    for name, url in [("cluster-list", "/clusters/"), ("cluster", f"/clusters/{demo_cluster.pk}/"),
                      ("node-list", "/nodes/"), ("node", f"/nodes/{node.pk}/"), ("cluster-add", "/clusters/add/")]:
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 200, url
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    # Registration: "Fetch from server" shows the fingerprint to confirm.
    page.fill("input[name=api_url]", demo_cluster.api_url)
    page.click("text=Fetch from server")
    page.wait_for_function(f"() => document.querySelector('#id_fingerprint').value === '{demo_cluster.fingerprint}'")
    page.screenshot(path=str(ARTIFACTS / "cluster-add-fingerprint.png"), full_page=True)
