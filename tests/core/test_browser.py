"""In a real browser (Debian chromium): log in through the form, then a fragment pushed to the
user's live group appears on the dashboard via the htmx websocket extension."""

import pytest

from apps.core import live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_login_page_and_live_fragment(page, live_server, operator):
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/login/")  # login required
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "operator-pass-1234")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("nav.nav a.active").inner_text() == "Dashboard"

    # wait until htmx's ws extension is connected, then push an out-of-band fragment
    page.wait_for_function("() => document.querySelector('#live') && "
                           "document.querySelector('#live')['htmx-internal-data']?.webSocket?.socket?.readyState === 1")
    live.push(f"user-{operator.pk}",
              html='<div id="notifications" hx-swap-oob="beforeend"><div class="message">Backup done</div></div>')
    page.wait_for_selector("#notifications .message:has-text('Backup done')")


def test_static_assets_served(page, live_server):
    for path in ["/static/css/app.css", "/static/vendor/htmx/htmx.min.js", "/static/vendor/htmx/ws.min.js",
                 "/static/vendor/uplot/uPlot.iife.min.js"]:
        response = page.request.get(f"{live_server.url}{path}")
        assert response.status == 200, path
