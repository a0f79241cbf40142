"""Destructive actions ask first in the page's own dialog; power buttons follow the guest's state.

The browser half (the dialog really holds the request back) is tests/e2e/test_confirm.py."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.urls import get_resolver

from apps.guests.choices import GuestStatus, GuestType, PowerAction
from apps.guests.models import Guest

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# UI routes whose POST destroys, interrupts or replaces something (found by name, so a new one is covered).
DESTRUCTIVE = re.compile(r"delete|remove|destroy|rollback|restore|cancel|template|power|reset|stop|shutdown|purge")
TAG = re.compile(r"<(?:form|button|a|input)\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*>", re.S)
URL = re.compile(r"\{%\s*url\s+['\"](?P<name>[\w-]+:[\w-]+)['\"]")


def destructive_url_names() -> set[str]:
    names = set()
    for ns, (_, resolver) in get_resolver().namespace_dict.items():
        if ns == "admin" or ns.endswith("-api"):
            continue
        names |= {f"{ns}:{n}" for n in resolver.reverse_dict if isinstance(n, str) and DESTRUCTIVE.search(n)}
    return names


def sends(tag: str, names: set[str]) -> bool:
    """The tag posts to one of `names` (a GET only opens a form or a confirmation page)."""
    reads = "hx-get=" in tag or (tag.startswith("<a ") and "hx-post" not in tag)
    return not reads and any(m["name"] in names for m in URL.finditer(tag))


def unguarded_tags(text: str, names: set[str]) -> list[str]:
    """Tags that send a request to a destructive URL without a data-confirm* attribute."""
    return [tag for tag in TAG.findall(text) if sends(tag, names) and "data-confirm" not in tag]


def test_the_destructive_routes_are_found():
    names = destructive_url_names()
    assert {"guests:guest_power", "guests:guest_bulk_power", "guests:guest_snapshot_rollback",
            "guests:guest_snapshot_delete", "guests:backup_delete", "guests:backupjob_delete", "guests:guest_delete",
            "guests:guest_restore", "guests:guest_template", "nodes:cluster_delete",
            "operations:operation_cancel"} <= names


def test_every_destructive_button_and_form_in_the_templates_asks_first():
    names = destructive_url_names()
    found, bad = 0, {}
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        found += sum(1 for tag in TAG.findall(text) if sends(tag, names))
        if unguarded := unguarded_tags(text, names):
            bad[str(path.relative_to(TEMPLATES))] = unguarded
    assert not bad, bad
    assert found >= 10  # the scan sees the buttons (a broken pattern would pass vacuously)


def test_the_scan_fails_on_a_button_without_the_question():
    names = {"guests:backup_delete"}
    bare = '<button class="btn danger" hx-post="{% url \'guests:backup_delete\' guest.pk b.pk %}">Delete</button>'
    asked = bare.replace("<button ", '<button data-confirm="Delete it?" ')
    assert unguarded_tags(bare, names) == [bare.removesuffix("Delete</button>")]
    assert unguarded_tags(asked, names) == []


def test_no_template_asks_with_the_browsers_own_confirm():
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert "hx-confirm" not in text, path
        assert not re.search(r"\bconfirm\(", text), path


class Buttons(HTMLParser):
    """The power partial as data: primary buttons, menu buttons, their attributes."""

    def __init__(self):
        super().__init__()
        self.primary, self.menu, self._in_menu = {}, {}, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details":
            self._in_menu = True
        if tag == "button":
            (self.menu if self._in_menu else self.primary)[attrs["value"]] = attrs


def power(status, type_=GuestType.QEMU, template=False) -> Buttons:
    guest = Guest(pk=7, vmid=101, name="web-1", type=type_, status=status, template=template)
    html = render_to_string("guests/partials/guest_power.html", {"guest": guest, "oob": True})
    assert 'id="guest-7-power"' in html and 'hx-swap-oob="true"' in html
    parser = Buttons()
    parser.feed(html)
    return parser


def enabled(buttons: dict) -> set[str]:
    return {value for value, attrs in buttons.items() if "disabled" not in attrs}


def test_a_running_vm_offers_shutdown_and_reboot_and_not_start():
    b = power(GuestStatus.RUNNING)
    assert list(b.primary) == ["shutdown", "reboot"]
    assert enabled(b.menu) == {"suspend", "stop", "reset"}
    assert "already running" in b.menu["start"]["title"]
    assert set(b.primary) | set(b.menu) == set(PowerAction.values)  # every action reachable
    assert b.menu["stop"]["data-confirm"] == ("Stop VM 101 (web-1) at once? Like pulling the power plug: "
                                              "unsaved data in it is lost.")
    for action in ("shutdown", "reboot", "stop", "reset", "suspend"):
        assert "data-confirm" in {**b.primary, **b.menu}[action], action
    assert "data-confirm" not in b.menu["start"]


def test_a_stopped_vm_offers_start_only():
    b = power(GuestStatus.STOPPED)
    assert list(b.primary) == ["start"] and enabled(b.primary) == {"start"}
    assert "data-confirm" not in b.primary["start"]
    assert enabled(b.menu) == set()
    assert "not running" in b.menu["stop"]["title"]


def test_a_paused_vm_offers_resume_and_stop():
    b = power(GuestStatus.PAUSED)
    assert list(b.primary) == ["resume"]
    assert enabled(b.menu) == {"stop", "reset"}
    assert "resume it first" in b.menu["shutdown"]["title"]


def test_a_template_offers_nothing_and_a_container_has_no_reset():
    b = power(GuestStatus.STOPPED, template=True)
    assert b.primary == {} and enabled(b.menu) == set()
    ct = power(GuestStatus.RUNNING, type_=GuestType.LXC)
    assert "reset" not in ct.primary and "reset" not in ct.menu
    assert list(ct.primary) == ["shutdown", "reboot"]
    assert ct.menu["stop"]["data-confirm"].startswith("Stop CT 101 (web-1) at once?")


@pytest.mark.django_db
def test_bulk_options_carry_the_question_and_rows_their_names(sim_cluster, client):
    html = client.get("/guests/").content.decode()
    form = re.search(r'<form id="guest-bulk-form".*?</form>', html, re.S)[0]
    assert 'data-confirm-from="#bulk-action"' in form and 'data-clear-selection="ids"' in form
    options = dict(re.findall(r'<option value="(\w+)"([^>]*)>', form))
    assert 'data-confirm="Stop {count} guest{s} at once? Unsaved data in them is lost."' in options["stop"]
    assert "data-confirm" not in options["start"] and "data-confirm" not in options["resume"]
    for action in ("shutdown", "reboot", "reset", "suspend"):
        assert "data-confirm=" in options[action], action
    assert 'data-confirm-label="VM 101 (web-02)"' in html


@pytest.mark.django_db
def test_the_guest_page_and_pushes_render_the_buttons_for_the_state(sim_cluster, client):
    from apps.guests.services import render_guest_fragments

    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)  # db-01, stopped
    html = client.get(f"/guests/{vm.pk}/").content.decode()
    assert f'id="guest-{vm.pk}-power"' in html
    assert 'id="confirm-dialog"' in html and "js/confirm.js" in html
    vm.status = GuestStatus.RUNNING
    pushed = render_guest_fragments([vm])
    b = Buttons()
    b.feed(pushed[pushed.index(f'id="guest-{vm.pk}-power"') - 5:])
    assert list(b.primary) == ["shutdown", "reboot"]
