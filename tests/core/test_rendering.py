"""apps.core.rendering: row URLs from one reverse() per view, cells as templates show them."""

import datetime
import uuid

from django.urls import reverse, set_script_prefix
from django.utils import timezone

from apps.core.rendering import local_datetime, pk_url, text


def test_pk_url_is_reverse():
    for name, pk in (("guests:guest", 7), ("nodes:node", 123456789), ("operations:operation", uuid.uuid4())):
        assert pk_url(name, pk) == reverse(name, kwargs={"pk": pk})
    assert pk_url("guests:guest", "12") == reverse("guests:guest", kwargs={"pk": "12"})  # not an int: reverse()
    try:
        set_script_prefix("/portal/")  # served under a prefix: the prefix is part of the cached URL
        assert pk_url("guests:guest", 7) == "/portal/guests/7/" == reverse("guests:guest", kwargs={"pk": 7})
    finally:
        set_script_prefix("/")
    assert pk_url("guests:guest", 7) == "/guests/7/"


def test_cells_as_templates_show_them():
    assert text('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;" and text(None) == ""
    when = datetime.datetime(2026, 12, 3, 23, 30, 5, tzinfo=datetime.timezone.utc)
    with timezone.override("Europe/Berlin"):
        assert local_datetime(when) == "2026-12-04 00:30:05"
    assert local_datetime(None) == "—"
