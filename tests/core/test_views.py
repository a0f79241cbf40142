import pytest
from django.test import Client

from apps.core.services import audit_log

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/audit/", "/operations/"])
def test_pages_require_login(anon_client, url):
    response = anon_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={url}"


def test_login_with_csrf_then_logout_by_post(operator):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/login/")
    assert page.status_code == 200
    token = page.cookies["csrftoken"].value
    response = browser.post("/login/", {"username": "operator", "password": "operator-pass-1234",
                                        "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/"
    assert browser.get("/").status_code == 200
    assert browser.get("/logout/").status_code == 405  # logging out is a POST (CSRF-protected)
    token = browser.cookies["csrftoken"].value
    assert browser.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert browser.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(operator):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/login/", {"username": "operator", "password": "operator-pass-1234"})
    assert response.status_code == 403


def test_wrong_password_says_so(anon_client, operator):
    response = anon_client.post("/login/", {"username": "operator", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_dashboard_layout_and_navigation(client):
    html = client.get("/").content.decode()
    assert '<nav class="nav"' in html
    assert 'href="/operations/"' in html  # links appear once an app serves them
    assert 'href="/audit/"' in html
    assert "/static/vendor/htmx/htmx.min.js" in html and "/static/vendor/htmx/ws.min.js" in html
    assert 'hx-headers=\'{"X-CSRFToken":' in html
    assert "cdn" not in html.lower()


def test_list_view_full_page_and_htmx_partial(client, operator):
    audit_log(user=operator, action="guests.guest_start", target="vm 100", result="success")
    page = client.get("/audit/")
    assert page.status_code == 200
    assert "<html" in page.content.decode() and "guests.guest_start" in page.content.decode()
    assert "HX-Request" in page["Vary"]
    partial = client.get("/audit/", headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body
    assert body.strip().startswith('<div id="object-table"') and "guests.guest_start" in body
    assert "HX-Request" in partial["Vary"]
    boosted = client.get("/audit/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.content.decode()  # boosted navigation wants the whole page


def test_list_view_filters_and_sorts(client, operator):
    audit_log(user=operator, action="guests.guest_start", target="vm 100", result="success")
    audit_log(user=operator, action="nodes.cluster_create", target="lab", result="failure")
    body = client.get("/audit/?result=failure", headers={"HX-Request": "true"}).content.decode()
    assert "nodes.cluster_create" in body and "guests.guest_start" not in body
    body = client.get("/audit/?sort=action", headers={"HX-Request": "true"}).content.decode()
    assert body.index("guests.guest_start") < body.index("nodes.cluster_create")


def test_list_view_bad_filter_names_the_field(client):
    body = client.get("/audit/?result=bogus").content.decode()
    assert "Result: Select a valid choice. bogus is not one of the available choices." in body


def test_list_view_is_scoped(user_client, operator, user):
    audit_log(user=operator, action="secret.operator_thing", target=None, result="success")
    audit_log(user=user, action="guests.own_thing", target=None, result="success")
    body = user_client.get("/audit/").content.decode()
    assert "guests.own_thing" in body and "secret.operator_thing" not in body


def test_detail_view_renders_fields_and_is_scoped(client, user_client, operator, user):
    mine = audit_log(user=user, action="guests.guest_stop", target="vm 101", result="failure",
                     detail={"reason": "locked"})
    theirs = audit_log(user=operator, action="nodes.cluster_delete", target="lab", result="success")
    body = client.get(f"/audit/{mine.pk}/").content.decode()
    assert '<dt>Action</dt><dd>Guest stop <span class="muted mono">guests.guest_stop</span></dd>' in body
    assert '<dt>Result</dt><dd><span class="badge badge-failure">Failure</span></dd>' in body
    assert "<dt>Reason</dt>" in body and "locked" in body
    assert user_client.get(f"/audit/{mine.pk}/").status_code == 200
    assert user_client.get(f"/audit/{theirs.pk}/").status_code == 404  # outside the user's scope
    assert f'href="/audit/{mine.pk}/"' in client.get("/audit/").content.decode()
