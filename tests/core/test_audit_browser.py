"""The audit log page in a browser: the operator's own login is there, a filter narrows the table,
and Export CSV downloads what the filters show (chosen after the page loaded), with no console error."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from apps.core.services import audit_log


@pytest.mark.django_db(transaction=True)
def test_export_takes_the_filters_the_page_shows(operator_page, live_server, operator):
    page = operator_page
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    audit_log(user=operator, action="guests.guest_delete", target="=cmd|' /C calc'!A0", result="failure")
    audit_log(user=operator, action="guests.guest_start", target="web-01", result="success")

    page.goto(f"{live_server.url}/audit/")
    table = page.locator("#object-table")
    assert "Login" in table.inner_text() and "web-01" in table.inner_text()  # this session's login too
    page.select_option("select[name=result]", "failure")
    page.wait_for_url("**/audit/?*result=failure*")
    page.wait_for_function("!document.querySelector('#object-table').innerText.includes('web-01')")

    with page.expect_download() as download_info:
        page.click("#audit-export")
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))
    assert [(r["action"], r["result"], r["object"]) for r in rows] == [
        ("guests.guest_delete", "failure", "'=cmd|' /C calc'!A0")]
    assert errors == []
