"""Browser: destructive actions ask in the page's own dialog, naming what they affect; cancelling
sends nothing (checked on pvesim), confirming acts; the bulk selection is spent afterwards; the
power buttons follow the guest's state, live. Real pvesim, Celery worker, ASGI server, chromium."""

from pathlib import Path

import pytest
from django.template.loader import render_to_string

from apps.guests.models import Guest
from apps.operations.models import Operation
from tests.fixtures import pve, sim_cluster, wait_for, wait_task  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def watch(page) -> dict:
    """POSTs the page sends and script errors it raises (a confirm that leaks a request shows here)."""
    seen = {"posts": [], "errors": []}
    page.on("request", lambda r: r.method == "POST" and seen["posts"].append(r.url))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: seen["errors"].append(f"browser dialog: {d.message}") or d.dismiss())
    return seen


def vm_status(pve, node, vmid, kind="qemu") -> str:
    return pve.get(f"nodes/{node}/{kind}/{vmid}/status/current")["status"]


def primary(page, guest) -> list[str]:
    return page.locator(f"#guest-{guest.pk}-power > button").evaluate_all("bs => bs.map(b => b.value)")


def test_stop_asks_and_cancel_sends_nothing(operator_page, live_server, sim_cluster, celery_worker, pve):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1360, "height": 900})
    seen = watch(page)
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)  # web-02 on pve2, running
    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    page.wait_for_selector("#live[hx-ext]", state="attached")
    page.wait_for_function("() => !document.body.classList.contains('live-down')")
    power = page.locator(f"#guest-{vm.pk}-power")
    assert primary(page, vm) == ["shutdown", "reboot"]  # a running VM: no Start up front
    assert power.locator("details.menu button[value=start]").is_disabled()
    assert power.locator("details.menu button[value=stop]").is_enabled()
    page.locator("header.page-header").screenshot(path=str(ARTIFACTS / "confirm-header-running.png"))

    power.locator("summary").click()
    page.screenshot(path=str(ARTIFACTS / "confirm-header-menu.png"),
                    clip={"x": 230, "y": 0, "width": 1130, "height": 400})
    power.locator("button[value=stop]").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Stop VM 101 (web-02)"
    text = dialog.inner_text()
    assert "Stop VM 101 (web-02) at once?" in text and "unsaved data in it is lost" in text
    assert page.evaluate("document.activeElement.value") == "cancel"  # Enter on an unread dialog cancels
    page.screenshot(path=str(ARTIFACTS / "confirm-dialog-stop.png"))
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")

    # The same button again, confirmed this time: exactly one POST in all, so the cancel sent none.
    power.locator("summary").click()
    power.locator("button[value=stop]").click()
    assert vm_status(pve, "pve2", 101) == "running"
    assert not Operation.objects.filter(kind="guest.stop").exists()
    dialog.get_by_role("button", name="Stop").click()
    page.wait_for_selector("#guest-operation .operation-status[data-status=succeeded]", timeout=60_000)
    assert [u for u in seen["posts"] if "/power/" in u] == [f"{live_server.url}/guests/{vm.pk}/power/"]
    assert vm_status(pve, "pve2", 101) == "stopped"
    # The pushed status brings the buttons of a stopped VM with it, without a reload.
    page.wait_for_function(f"() => [...document.querySelectorAll('#guest-{vm.pk}-power > button')]"
                           ".map(b => b.value).join() === 'start'", timeout=30_000)
    assert power.locator("details.menu button[value=stop]").is_disabled()
    assert "Stop: it is not running" in power.locator("details.menu button[value=stop]").get_attribute("title")
    page.locator("header.page-header").screenshot(path=str(ARTIFACTS / "confirm-header-stopped.png"))
    assert seen["errors"] == []


def test_bulk_stop_asks_naming_each_guest_and_clears_the_selection(
        operator_page, live_server, sim_cluster, celery_worker, pve):
    page = operator_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    seen = watch(page)
    chosen = {g.vmid: g for g in Guest.objects.filter(cluster=sim_cluster, vmid__in=[102, 103, 201])}
    page.goto(f"{live_server.url}/guests/")
    page.wait_for_selector("#object-table")
    count = page.locator("#guest-bulk-form [data-selection-count]")
    assert count.inner_text() == "0 selected"
    for guest in chosen.values():
        page.check(f"input[name=ids][value='{guest.pk}']")
    assert count.inner_text() == "3 selected"
    page.select_option("#bulk-action", "stop")

    page.click("#guest-bulk-form button[type=submit]")
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Stop 3 guests"
    assert "Unsaved data in them is lost" in dialog.inner_text()
    assert dialog.locator("#confirm-items li").all_inner_texts() == [
        "VM 102 (ml-train-01)", "VM 103 (vdi-01)", "CT 201 (proxy-01)"]
    page.screenshot(path=str(ARTIFACTS / "confirm-dialog-bulk-stop.png"))
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert count.inner_text() == "3 selected"  # cancelling keeps the selection for another try

    page.click("#guest-bulk-form button[type=submit]")
    dialog.wait_for(state="visible")
    assert {vm_status(pve, "pve1", 102), vm_status(pve, "pve2", 103), vm_status(pve, "pve3", 201, "lxc")} == {"running"}
    assert not Operation.objects.filter(kind="guest.stop").exists()
    dialog.get_by_role("button", name="Stop").click()
    results = page.locator("#guest-bulk-results")
    results.get_by_text("Stop: 3 guests").wait_for()
    assert [u for u in seen["posts"] if "/guests/bulk/" in u] == [f"{live_server.url}/guests/bulk/"]
    # The selection is spent: nothing checked, the count back to 0, so Apply cannot hit them again.
    page.wait_for_function("() => !document.querySelector('input[name=ids]:checked')")
    assert count.inner_text() == "0 selected"
    wait_for(lambda: {vm_status(pve, "pve1", 102), vm_status(pve, "pve2", 103),
                      vm_status(pve, "pve3", 201, "lxc")} == {"stopped"}, timeout=60)
    page.screenshot(path=str(ARTIFACTS / "confirm-bulk-done.png"))
    assert seen["errors"] == []


def test_delete_snapshot_asks_and_cancel_keeps_it(operator_page, live_server, sim_cluster, celery_worker, pve):
    page = operator_page
    page.set_viewport_size({"width": 1360, "height": 900})
    seen = watch(page)
    wait_task(pve, pve.post("nodes/pve2/qemu/101/snapshot", snapname="keep-me", description="before the upgrade"))
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    page.goto(f"{live_server.url}/guests/{vm.pk}/snapshots/")
    row = page.locator(f'#guest-{vm.pk}-snapshots [data-snapshot="keep-me"]')
    row.wait_for(timeout=30_000)  # the page's own read of the guest brings it

    def snapshots():
        return {s["name"] for s in pve.get("nodes/pve2/qemu/101/snapshot")}

    row.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "Delete snapshot 'keep-me' of VM 101 (web-02)?" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "confirm-dialog-snapshot.png"))
    page.keyboard.press("Escape")  # Escape is a cancel too
    dialog.wait_for(state="hidden")

    row.get_by_role("button", name="Delete").click()
    dialog.wait_for(state="visible")
    assert "keep-me" in snapshots()
    assert not Operation.objects.filter(kind="guest.snapshot_delete").exists()
    dialog.get_by_role("button", name="Delete snapshot").click()
    page.wait_for_selector("#snapshot-operation .operation-status[data-status=succeeded]", timeout=60_000)
    assert [u for u in seen["posts"] if "keep-me" in u] == [
        f"{live_server.url}/guests/{vm.pk}/snapshots/keep-me/delete/"]
    assert "keep-me" not in snapshots()
    assert seen["errors"] == []


def test_a_push_that_changes_only_figures_keeps_the_menu_and_the_question(operator_page, live_server, sim_cluster):
    """The power buttons are pushed with every change of the guest (CPU, memory...); only a change
    of state swaps them, so an open menu or a pending question is not pulled away every few seconds,
    and a question whose button a state change replaced sends nothing."""
    from apps.guests.services import render_guest_fragments

    page = operator_page
    seen = watch(page)
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    page.goto(f"{live_server.url}/guests/{vm.pk}/")
    power = page.locator(f"#guest-{vm.pk}-power")
    power.locator("summary").click()
    power.locator("button[value=stop]").click()
    page.locator("#confirm-dialog").wait_for(state="visible")

    def push(html):  # what the websocket extension does with a pushed message: oob swaps only
        page.evaluate("html => htmx.swap('#live', html, {swapStyle: 'none'})", html)

    page.evaluate(f"document.querySelector('#guest-{vm.pk}-power').__mark = 1")
    vm.cpu = 0.77
    push(render_guest_fragments([vm]))
    assert page.evaluate(f"document.querySelector('#guest-{vm.pk}-power').__mark") == 1  # same state: kept
    vm.status = "stopped"
    push(render_guest_fragments([vm]))
    assert primary(page, vm) == ["start"]
    page.locator("#confirm-dialog #confirm-ok").click()
    page.locator("#notifications").get_by_text("Nothing was done: the page changed while you were asked").wait_for()
    assert [u for u in seen["posts"] if "/power/" in u] == []
    assert seen["errors"] == []


def test_removing_a_cluster_asks_on_its_page(operator_page, live_server):
    """A plain (non-htmx) form: the submit is held for the page's dialog, and sent once confirmed."""
    from apps.nodes.models import Cluster

    page = operator_page
    seen = watch(page)
    lab = Cluster.objects.create(name="old-lab", api_url="https://192.0.2.10:8006", token_id="root@pam!x",
                                 token_secret="s", tls_mode="insecure")
    page.goto(f"{live_server.url}/clusters/{lab.pk}/")
    page.get_by_role("button", name="Remove").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Remove cluster old-lab"
    assert ("Remove old-lab (https://192.0.2.10:8006) from the control plane, with its inventory of 0 nodes "
            "and 0 guests and its backup jobs? Nothing changes in Proxmox.") in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert Cluster.objects.filter(pk=lab.pk).exists()

    page.get_by_role("button", name="Remove").click()
    dialog.get_by_role("button", name="Remove cluster").click()
    page.wait_for_url(f"{live_server.url}/clusters/")
    assert not Cluster.objects.filter(pk=lab.pk).exists()
    assert [u for u in seen["posts"] if "/delete/" in u] == [f"{live_server.url}/clusters/{lab.pk}/delete/"]
    assert seen["errors"] == []


HARNESS = """
<form id="restore" data-confirm-when="#restore input[value=same]:checked" data-confirm="Restore over VM 101?"
      data-confirm-title="Restore over VM 101" data-confirm-button="Restore">
  <input type="radio" name="target" value="new" checked><input type="radio" name="target" value="same">
  <button type="submit">Restore</button>
</form>
<form id="nics" data-confirm-items="#nics input[name$=_remove]:checked" data-confirm-title="Remove {count} card{s}"
      data-confirm="Remove {count} network card{s}?">
  <table><tr><td>net0 (eth0)</td><td><input type="checkbox" name="nets_0_remove"></td></tr>
         <tr><td>net1</td><td><input type="checkbox" name="nets_1_remove"></td></tr></table>
  <button type="submit" name="go" value="save">Save</button>
</form>
<script>
  window.sent = [];
  // Runs after confirm.js's capture listener: a submit that reaches it is one the page would send.
  addEventListener("submit", e => {
    if (e.target.method === "dialog") return;
    if (!e.defaultPrevented) sent.push(e.target.id + ":" + (e.submitter ? e.submitter.value : ""));
    e.preventDefault();
  });
</script>
"""


def test_the_question_follows_what_is_chosen(page):
    """confirm.js on its own (no server): ask only when the risky choice is made, list the chosen
    rows by their first cell, count them, keep the pressed button, and Escape cancels."""
    page.set_content("<!doctype html><body>" + render_to_string("htmx/confirm_dialog.html") + HARNESS + "</body>")
    page.add_script_tag(path=str(Path(__file__).resolve().parents[2] / "static/js/confirm.js"))
    dialog = page.locator("#confirm-dialog")

    page.click("#restore button")  # restoring as a new guest replaces nothing: no question
    assert page.evaluate("sent") == ["restore:"] and not dialog.is_visible()
    page.check("#restore input[value=same]")
    page.click("#restore button")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Restore over VM 101"
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("sent") == ["restore:"]

    page.click("#nics button")  # nothing removed: saved without a question
    page.check("input[name=nets_0_remove]")
    page.check("input[name=nets_1_remove]")
    page.click("#nics button")
    dialog.wait_for(state="visible")
    assert dialog.locator("#confirm-title").inner_text() == "Remove 2 cards"
    assert dialog.locator("#confirm-items li").all_inner_texts() == ["net0 (eth0)", "net1"]
    assert page.evaluate("sent") == ["restore:", "nics:save"]
    dialog.locator("#confirm-ok").click()
    page.wait_for_function("sent.length === 3")
    assert page.evaluate("sent") == ["restore:", "nics:save", "nics:save"]


# Sockets the page opens wait until the test calls window.__openSockets(): what is pushed before is
# lost to the page, as when a worker is faster than the browser.
HOLD_SOCKETS = """(() => {
  const Real = window.WebSocket, held = [];
  window.WebSocket = function (url, protocols) {
    const proxy = new EventTarget();
    proxy.readyState = 0; proxy.url = url;
    const open = () => {
      const ws = protocols === undefined ? new Real(url) : new Real(url, protocols);
      for (const name of ['open', 'message', 'close', 'error']) {
        ws.addEventListener(name, (event) => {
          proxy.readyState = ws.readyState;
          const copy = name === 'message' ? new MessageEvent('message', {data: event.data})
            : name === 'close' ? new CloseEvent('close', {code: event.code, reason: event.reason})
            : new Event(name);
          if (typeof proxy['on' + name] === 'function') proxy['on' + name](copy);
          proxy.dispatchEvent(copy);
        });
      }
      proxy.send = (data) => ws.send(data);
      proxy.close = (code, reason) => ws.close(code, reason);
    };
    proxy.send = () => {}; proxy.close = () => {};
    held.push(open);
    return proxy;
  };
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.__openSockets = () => held.splice(0).forEach((open) => open());
})();"""


def test_a_reread_pushed_before_the_page_listens_still_reaches_it(operator_page, live_server, sim_cluster,
                                                                    celery_worker, pve):
    """The snapshot page queues a re-read of the guest when it opens; the worker can push the new
    tree before the page's websocket is open. Once open, the page asks for the tree again."""
    from apps.guests.models import Snapshot

    page = operator_page
    seen = watch(page)
    page.add_init_script(HOLD_SOCKETS)
    wait_task(pve, pve.post("nodes/pve2/qemu/101/snapshot", snapname="early-bird"))
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    page.goto(f"{live_server.url}/guests/{vm.pk}/snapshots/")
    wait_for(lambda: Snapshot.objects.filter(guest=vm, name="early-bird").exists(), timeout=60)
    row = page.locator(f'#guest-{vm.pk}-snapshots [data-snapshot="early-bird"]')
    assert row.count() == 0  # rendered before the re-read; its push went to nobody
    page.evaluate("window.__openSockets()")
    row.wait_for(timeout=15_000)
    assert seen["errors"] == []
