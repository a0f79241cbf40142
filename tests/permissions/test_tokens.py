"""API tokens as a REST client uses them: real HTTP requests (`requests`) to the live ASGI server.

A tenant admin logs in with username + password, creates a token through /api/v1/tokens/ (its
secret in that answer only), uses it (`Authorization: Token <secret>`): it sees its tenant's
guests and not another tenant's (404); a read-only token cannot write (403); a revoked, an
expired or an unknown token is 401. Creation and revocation are audited.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests

from tests.permissions.conftest import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _session(base: str, secret: str | None = None) -> requests.Session:
    session = requests.Session()
    if secret:
        session.headers["Authorization"] = f"Token {secret}"
    session.base = base
    return session


def _get(session, path, **kw):
    return session.get(session.base + path, timeout=30, **kw)


def _post(session, path, body, **kw):
    return session.post(session.base + path, json=body, timeout=30, **kw)


def test_token_lifecycle_over_http(live_server, pool_tenants):
    from apps.core.models import AuditEntry
    from apps.guests.models import Guest
    from apps.permissions.models import ApiToken

    acme, globex = pool_tenants["acme"], pool_tenants["globex"]
    base = live_server.url

    # Log in: username + password -> a token (of the admin's tenant), shown once.
    login = _post(_session(base), "/api/v1/auth/token/", {"username": "acme-admin", "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert login.json()["tenant"] == acme.pk
    admin = _session(base, login.json()["token"])

    # Create a named token through the API: its secret is in this answer and nowhere else.
    created = _post(admin, "/api/v1/tokens/", {"name": "ci deploy", "expiry_days": 30})
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["token"]
    assert body["tenant"] == acme.pk and body["read_only"] is False and body["name"] == "ci deploy"
    assert secret.startswith(body["id"]) and len(secret) > len(body["id"])
    stored = ApiToken.objects.get(token_key=body["id"])
    assert secret not in (stored.digest, stored.token_key) and stored.tenant_id == acme.pk
    listed = _get(admin, "/api/v1/tokens/")
    assert listed.status_code == 200
    assert body["id"] in {t["id"] for t in listed.json()["results"]}
    assert secret not in listed.text and "token" not in listed.json()["results"][0]
    assert secret not in _get(admin, f"/api/v1/tokens/{body['id']}/").text

    # Use it: the tenant's guests, and another tenant's guest is not found.
    client = _session(base, secret)
    guests = _get(client, "/api/v1/guests/?page_size=500")
    assert guests.status_code == 200, guests.text
    seen = {g["id"] for g in guests.json()["results"]}
    assert seen == set(Guest.objects.filter(tenant=acme).values_list("pk", flat=True)) and seen
    other = Guest.objects.filter(tenant=globex).order_by("vmid").first()
    assert other is not None
    assert _get(client, f"/api/v1/guests/{other.pk}/").status_code == 404
    assert _get(client, f"/api/v1/tenants/{globex.pk}/").status_code == 404
    assert _get(client, f"/api/v1/tenants/{acme.pk}/quota/").status_code == 200
    stored.refresh_from_db()
    assert stored.last_used is not None and stored.last_used_from == "127.0.0.1"

    # A read-only token reads but cannot change anything.
    ro = _post(admin, "/api/v1/tokens/", {"name": "dashboard", "read_only": True}).json()
    readonly = _session(base, ro["token"])
    assert _get(readonly, "/api/v1/guests/").status_code == 200
    refused = _post(readonly, "/api/v1/tokens/", {"name": "escalate"})
    assert refused.status_code == 403, refused.text
    mine = Guest.objects.filter(tenant=acme).order_by("vmid").first()
    assert _post(readonly, f"/api/v1/guests/{mine.pk}/start/", {}).status_code == 403
    assert readonly.delete(f"{base}/api/v1/tokens/{ro['id']}/", timeout=30).status_code == 403

    # Revoke: the next request carrying it is 401.
    revoked = admin.delete(f"{base}/api/v1/tokens/{body['id']}/", timeout=30)
    assert revoked.status_code == 204, revoked.text
    after = _get(client, "/api/v1/guests/")
    assert after.status_code == 401 and after.headers["WWW-Authenticate"].startswith("Token")
    assert not ApiToken.objects.filter(token_key=body["id"]).exists()

    # Unknown and expired tokens: 401 (the expired one is kept, listed as expired).
    assert _get(_session(base, "0" * 64), "/api/v1/guests/").status_code == 401
    expired, expired_secret = ApiToken.objects.create(pool_tenants["users"]["acme-member"], expiry=timedelta(seconds=-1),
                                                      name="old", tenant=acme)
    assert _get(_session(base, expired_secret), "/api/v1/guests/").status_code == 401
    assert ApiToken.objects.filter(pk=expired.pk).exists()
    shown = {t["id"]: t for t in _get(admin, "/api/v1/tokens/").json()["results"]}
    assert shown[expired.token_key]["expired"] is True

    # Audited: who, which tenant, what.
    actions = list(AuditEntry.objects.filter(action__startswith="token.").values_list("action", "username",
                                                                                      "tenant_id"))
    assert ("token.login", "acme-admin", acme.pk) in actions
    assert ("token.create", "acme-admin", acme.pk) in actions
    assert ("token.revoke", "acme-admin", acme.pk) in actions
    assert not AuditEntry.objects.filter(detail__icontains=secret).exists()


def test_websocket_takes_the_tokens_tenant(live_server, pool_tenants):
    """The live socket authenticates the token and subscribes as its tenant only; revoking the
    token closes it."""
    import asyncio
    import json

    import websockets
    from asgiref.sync import sync_to_async

    from apps.permissions.models import ApiToken
    from apps.permissions.tokens import revoke_token

    acme, globex = pool_tenants["acme"], pool_tenants["globex"]
    owner = pool_tenants["users"]["acme-member"]
    token, secret = ApiToken.objects.create(owner, name="ws", tenant=acme)

    async def scenario():
        async with websockets.connect(
                f"{live_server.ws_url}/ws/live/?format=json&groups=tenant-{acme.pk},tenant-{globex.pk}",
                additional_headers={"Authorization": f"Token {secret}"}) as ws:
            subscribed = json.loads(await asyncio.wait_for(ws.recv(), 30))
            await sync_to_async(revoke_token)(token, by=owner)
            frames = []
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            except websockets.ConnectionClosed as closed:
                return subscribed, frames, closed.rcvd.code if closed.rcvd else None

    subscribed, frames, code = asyncio.run(scenario())
    assert subscribed["groups"] == [f"tenant-{acme.pk}"] and subscribed["denied"] == [f"tenant-{globex.pk}"]
    assert {"type": "unsubscribed", "groups": [f"tenant-{acme.pk}"]} in frames and code == 4403


def test_tenant_admin_creates_uses_and_revokes_a_token_in_the_browser(page, live_server, pool_tenants):
    """The API tokens page: the secret shown once with a working copy button, used by a curl-like
    client, revoked through the page's own confirm dialog, then refused (401)."""
    from apps.permissions.models import ApiToken

    base = live_server.url
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "acme-admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.get_by_role("link", name="API tokens").click()
    page.wait_for_url(f"{base}/tokens/")
    page.fill("input[name=name]", "curl")
    page.click("button:has-text('Create token')")
    secret = page.locator("[data-testid=token-secret]").inner_text().strip()
    page.click("button[data-copy]")
    page.locator("[data-copied]").wait_for(state="visible")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.screenshot(path=str(ARTIFACTS / "tokens-created.png"), full_page=True)

    client = _session(base, secret)
    response = _get(client, "/api/v1/guests/")
    assert response.status_code == 200 and response.json()["count"] >= 1
    token = ApiToken.objects.get(name="curl")
    assert token.tenant == pool_tenants["acme"]

    page.goto(f"{base}/tokens/")
    assert secret not in page.content()
    row = page.locator("#token-table tr", has_text="curl")
    row.wait_for()
    assert "127.0.0.1" in row.inner_text()  # its last use, and from where
    row.get_by_role("button", name="Revoke").click()
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    assert "curl" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "tokens-revoke-dialog.png"))
    dialog.get_by_role("button", name="Revoke token").click()
    page.locator(".message", has_text="revoked").wait_for()
    assert _get(client, "/api/v1/guests/").status_code == 401

    # The tenant page: its members (the admin manages them) and quota usage.
    page.get_by_role("link", name="Tenants").click()
    page.wait_for_url(f"{base}/tenants/{pool_tenants['acme'].pk}/")
    assert "acme-member" in page.locator("#members").inner_text()
    assert "vCPUs" in page.locator("#quota").inner_text()
    page.screenshot(path=str(ARTIFACTS / "tenant-page.png"), full_page=True)
    assert errors == []
