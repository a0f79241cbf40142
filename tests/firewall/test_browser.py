"""Browser: a tenant member opens a guest's Firewall tab, switches its firewall on, adds an inbound
SSH rule, sees it in the effective rules with "TCP 22 from 203.0.113.5" answered by that row, and
deletes it through the confirm dialog. No console error on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.proxmox import GuestRef
from apps.proxmox import firewall as fw

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_tenant_adds_ssh_rule_and_reads_the_effective_view(tenants, page, live_server, pve):
    errors = []
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught {exc}"))
    guest = tenants["guests"][100]
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "acme-member")
    page.fill("input[name=password]", "pass-1234-member")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/guests/{guest.pk}/")
    page.click("nav.tabs >> text=Firewall")
    page.wait_for_selector("#fw-rules >> text=No rules")
    page.select_option("#fw-options select[name=enable]", "1")
    page.click("#fw-options >> text=Save options")
    page.wait_for_selector("text=Firewall options saved.")

    page.click("summary:has-text('Add rule')")
    form = page.locator("#fw-add-rule")
    form.locator("select[name=type]").select_option("in")
    form.locator("select[name=action]").select_option("ACCEPT")
    form.locator("input[name=macro]").fill("SSH")
    form.locator("input[name=source]").fill("203.0.113.0/24")
    form.locator("input[name=comment]").fill("ssh from the office")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#rule-0 >> text=ssh from the office")
    assert [(r["macro"], r["source"]) for r in fw.rules(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)))[0]] \
        == [("SSH", "203.0.113.0/24")]

    page.click("text=Effective rules")
    page.wait_for_selector("#fw-effective-in >> text=ssh from the office")
    page.fill("#fw-question input[name=port]", "22")
    page.fill("#fw-question input[name=address]", "203.0.113.5")
    page.click("#fw-question button[type=submit]")
    page.wait_for_selector("#fw-decision >> text=ACCEPT")
    highlighted = page.locator("#fw-effective-in tr.fw-decides")
    assert highlighted.count() == 1 and "ssh from the office" in highlighted.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "firewall-effective.png"), full_page=True)

    page.goto(f"{live_server.url}/guests/{guest.pk}/firewall/")
    page.click("#rule-0 button:has-text('Delete')")
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "Delete rule 0" in dialog.inner_text()
    dialog.locator("#confirm-ok").click()
    page.wait_for_selector("text=Rule 0 deleted.")
    assert fw.rules(pve, fw.Level.of_guest(GuestRef("pve1", "qemu", 100)))[0] == []
    assert errors == []


def test_tenant_switches_ips_on_and_sees_an_alert_appear(tenants, page, live_server, pvesim, operator):
    """The IPS card over pvesim's SSH: the member switches Suricata on for its guest, an alert is
    appended to the node's eve.json, one read later it shows on the open page (pushed live)."""
    from apps.firewall import ips

    channel = ips.channel_create(user=operator, cluster=tenants["cluster"])
    pvesim.admin("POST", "/ssh/authorized-keys", key=channel.public_key)
    for node, listener in pvesim.ssh.items():
        ips.host_update(user=operator, channel=channel, node=node, address=listener["host"], port=listener["port"])
    errors = []
    page.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught {exc}"))
    page.add_init_script("document.addEventListener('htmx:wsOpen', function () { window.liveOpen = true; });")
    guest = tenants["guests"][100]
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "acme-member")
    page.fill("input[name=password]", "pass-1234-member")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/guests/{guest.pk}/firewall/")
    page.wait_for_selector("#fw-ips-state >> text=off")
    page.click("#fw-ips-form button[type=submit]")
    page.wait_for_selector("text=IPS on for 100 (web-01).")
    assert page.locator("#fw-ips-state").inner_text() == "on"
    assert "ips: 1" in pvesim.admin("GET", "/files", node="pve1", path="/etc/pve/firewall/100.fw")["content"]
    page.wait_for_selector(f"#fw-ips-alerts-{guest.pk} >> text=No alerts for this guest.")

    page.wait_for_function("window.liveOpen === true")  # the page listens before the alert is read
    pvesim.admin("POST", "/suricata/alert", vmid=100, signature="ET SCAN Suspicious inbound to SSH",
                 src_ip="203.0.113.5", dest_port=22, action="blocked")
    assert ips.alerts_ingest(tenants["cluster"].pk).stored == 1  # what the periodic read does
    row = page.locator(f"#fw-ips-alerts-{guest.pk} tr", has_text="ET SCAN Suspicious inbound to SSH")
    row.wait_for()
    assert "203.0.113.5:40000" in row.inner_text() and "blocked" in row.inner_text()
    page.wait_for_selector(f"#fw-ips-alerts-{guest.pk} >> text=1 in the last 24 hours")
    page.locator(f"#fw-ips-alerts-{guest.pk} .chart .uplot").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#fw-ips").screenshot(path=str(ARTIFACTS / "firewall-ips-alert.png"))
    assert errors == []
