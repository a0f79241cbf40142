"""Browser: what open pages show follows the cluster without a reload. The dashboard's figures,
running operations (with their titles) and sync stamps, a guest's header after a migration, and
usage charts drawn on load and when their data is pushed. Real pvesim, Celery worker, ASGI server;
a thread plays Celery beat."""

from pathlib import Path

import pytest
from django.core.cache import cache

from apps.guests.actions.migrate import guest_migrate
from apps.guests.models import Guest
from apps.nodes.models import Node
from apps.nodes.rrd import rrd_cache_key
from tests.e2e.test_dashboard import beat, demo_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# True once the canvas inside `selector` has a painted pixel (uPlot draws axes and lines there).
CANVAS_DRAWN = """(selector) => {
  const canvas = document.querySelector(selector + ' canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
  return false;
}"""


def text_is(selector: str, text: str) -> str:
    return f"() => (document.querySelector({selector!r}) || {{}}).textContent?.trim() === {text!r}"


@pytest.fixture
def slow_clock(pvesim):
    pvesim.admin("POST", "/time-scale", scale=3.0)  # the migration lasts long enough to watch
    yield
    pvesim.admin("POST", "/time-scale", scale=pvesim.time_scale)


def test_dashboard_and_guest_header_follow_a_migration(operator_page, live_server, demo_cluster, beat,  # noqa: F811
                                                       celery_worker, operator, pvesim, slow_clock):
    ARTIFACTS.mkdir(exist_ok=True)
    dashboard = operator_page
    dashboard.set_viewport_size({"width": 1360, "height": 900})
    dashboard.goto(f"{live_server.url}/")
    dashboard.wait_for_function("() => !document.body.classList.contains('live-down')")
    assert "at page load" not in dashboard.inner_text("#dashboard-summary")
    assert dashboard.inner_text("[data-stat=nodes]").strip() == "3 / 3"
    assert dashboard.inner_text("[data-stat=operations]").strip() == "0"
    dashboard.evaluate("window.__noReload = true")
    # "synced … ago" is re-stamped by the pushes of later syncs.
    stamp = f"#cluster-synced-{demo_cluster.pk}"
    since = dashboard.get_attribute(stamp, "data-since")
    dashboard.wait_for_function(f"() => document.querySelector({stamp!r}).dataset.since !== {since!r}",
                                timeout=30_000)

    vm = Guest.objects.get(cluster=demo_cluster, vmid=101)
    guest_page = dashboard.context.new_page()
    guest_page.set_viewport_size({"width": 1360, "height": 900})
    guest_page.goto(f"{live_server.url}{vm.get_absolute_url()}")
    assert guest_page.inner_text(f"#guest-{vm.pk}-node").strip() == "pve2"
    guest_page.evaluate("window.__noReload = true")

    operation = guest_migrate(guest=vm, user=operator, target="pve3")
    dashboard.wait_for_function(text_is("[data-stat=operations]", "1"), timeout=30_000)
    running = dashboard.locator(f'#dashboard-operations li[data-operation="{operation.pk}"]')
    assert running.locator("a").inner_text() == "Migrate VM 101 (web-02) from pve2 to pve3"
    assert "guest.migrate" not in dashboard.inner_text("#dashboard-operations")
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard-migration-running.png"), full_page=True)

    dashboard.wait_for_function(text_is("[data-stat=operations]", "0"), timeout=90_000)
    assert dashboard.locator(f'#dashboard-operations li[data-operation="{operation.pk}"]').count() == 0
    # The guest's page header names its new node once the sync (or the migration's re-read) saw it.
    guest_page.wait_for_function(text_is(f"#guest-{vm.pk}-node", "pve3"), timeout=30_000)
    assert guest_page.get_attribute(f"#guest-{vm.pk}-node a", "href") == \
        Node.objects.get(cluster=demo_cluster, name="pve3").get_absolute_url()

    detail = dashboard.context.new_page()
    detail.set_viewport_size({"width": 1360, "height": 900})
    detail.goto(f"{live_server.url}{operation.get_absolute_url()}")
    assert detail.title() == "Migrate VM 101 (web-02) from pve2 to pve3 · Datacenter"
    assert detail.inner_text("h1") == "Migrate VM 101 (web-02) from pve2 to pve3"
    assert detail.get_by_role("link", name="101 (web-02)").get_attribute("href") == vm.get_absolute_url()
    detail.screenshot(path=str(ARTIFACTS / "operation-migrate-done.png"), full_page=True)
    detail.close()

    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    dashboard.wait_for_function(text_is("[data-stat=nodes]", "2 / 3"), timeout=30_000)
    dashboard.screenshot(path=str(ARTIFACTS / "dashboard-node-offline.png"), full_page=True)
    assert dashboard.evaluate("window.__noReload") is True
    assert guest_page.evaluate("window.__noReload") is True


def test_charts_draw_when_their_data_arrives_and_on_load(operator_page, live_server, demo_cluster, beat,  # noqa: F811
                                                         celery_worker):
    ARTIFACTS.mkdir(exist_ok=True)
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 900})
    node = Node.objects.get(cluster=demo_cluster, name="pve1")
    cache.delete(rrd_cache_key(node.pk))  # the page opens before any history: it arrives by push
    page.goto(f"{live_server.url}{node.get_absolute_url()}")
    charts = f"#node-charts-{node.pk}"
    page.wait_for_function(CANVAS_DRAWN, arg=charts, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "node-charts.png"), full_page=True)
    page.reload()
    page.wait_for_function(CANVAS_DRAWN, arg=charts, timeout=15_000)  # drawn from the page's own data

    vm = Guest.objects.get(cluster=demo_cluster, vmid=100)
    page.goto(f"{live_server.url}{vm.get_absolute_url()}")
    page.wait_for_function(CANVAS_DRAWN, arg=f"#guest-{vm.pk}-details", timeout=30_000)
