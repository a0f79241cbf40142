"""Registering a cluster: the connection is tested first; every failure is a field error and
nothing is saved. Real pvesim over HTTPS."""

import pytest

from apps.core.models import AuditEntry
from apps.nodes.models import Cluster

from .conftest import cluster_values, unused_port

pytestmark = pytest.mark.django_db

WRONG_FP = ":".join(["AB"] * 32)


def post_cluster(api, sim, expect, **overrides):
    return api.post("/api/v1/clusters/", cluster_values(sim, **overrides), expect=expect)


def test_api_registers_a_cluster_and_never_returns_the_secret(api, sim):
    body = post_cluster(api, sim, 201, name="prod")
    assert body["name"] == "prod"
    assert body["status"] == "pending"
    assert body["fingerprint"] == sim.fingerprint
    assert body["pve_version"].startswith("9.")
    assert "token_secret" not in body
    assert sim.token_secret not in api.last.content.decode()
    cluster = Cluster.objects.get(pk=body["id"])
    assert cluster.token_secret == sim.token_secret  # stored (encrypted), usable by the sync
    listing = api.get("/api/v1/clusters/")
    assert sim.token_secret not in str(listing)
    assert AuditEntry.objects.filter(action="nodes.cluster_create", result="success").exists()
    assert sim.token_secret not in str(list(AuditEntry.objects.values()))


def test_secret_is_encrypted_at_rest(cluster, sim):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT token_secret FROM nodes_cluster WHERE id = %s", [cluster.pk])
        raw = cursor.fetchone()[0]
    assert sim.token_secret not in raw


def test_name_defaults_to_the_proxmox_cluster_name(api, sim):
    body = post_cluster(api, sim, 201)
    assert body["name"] == "demo"


def test_bad_token_is_a_token_secret_error_and_nothing_saved(api, sim):
    body = post_cluster(api, sim, 400, token_secret="00000000-0000-0000-0000-000000000000")
    assert "401" in body["errors"]["token_secret"][0]
    assert "Authentication failed" in body["errors"]["token_secret"][0]
    assert not Cluster.objects.exists()
    assert AuditEntry.objects.filter(action="nodes.cluster_create", result="failure").exists()


def test_wrong_fingerprint_is_a_fingerprint_error(api, sim):
    body = post_cluster(api, sim, 400, fingerprint=WRONG_FP)
    message = body["errors"]["fingerprint"][0]
    assert "fingerprint mismatch" in message and sim.fingerprint in message
    assert not Cluster.objects.exists()


def test_pin_without_fingerprint_shows_the_servers_fingerprint_to_confirm(api, sim):
    body = post_cluster(api, sim, 400, fingerprint="")
    assert sim.fingerprint in body["errors"]["fingerprint"][0]
    assert not Cluster.objects.exists()


def test_verify_mode_with_a_self_signed_server_is_a_tls_error(api, sim):
    body = post_cluster(api, sim, 400, tls_mode="verify", fingerprint="")
    assert "TLS verification" in body["errors"]["ca_cert"][0]
    assert not Cluster.objects.exists()


def test_verify_mode_with_the_ca_certificate_works(api, sim):
    pem = open(sim.cert).read()
    body = post_cluster(api, sim, 201, tls_mode="verify", fingerprint="", ca_cert=pem)
    assert body["tls_mode"] == "verify"


def test_refused_connection_is_an_api_url_error(api, sim):
    body = post_cluster(api, sim, 400, api_url=f"https://127.0.0.1:{unused_port()}")
    assert "connection refused" in body["errors"]["api_url"][0]
    assert not Cluster.objects.exists()


def test_unknown_host_is_a_dns_error(api, sim):
    body = post_cluster(api, sim, 400, api_url="https://no-such-host.invalid:8006", tls_mode="insecure",
                        fingerprint="")
    assert "DNS lookup failed" in body["errors"]["api_url"][0]
    assert not Cluster.objects.exists()


def test_token_without_privilege_names_the_missing_privilege(api, sim):
    created = sim.api().access.users("root@pam").token("noprivs").post(privsep=1)
    body = post_cluster(api, sim, 400, token_id="root@pam!noprivs", token_secret=created["value"])
    message = body["errors"]["token_id"][0]
    assert "403" in message and "Sys.Audit" in message
    assert not Cluster.objects.exists()


def test_insecure_mode_is_flagged(api, sim):
    body = post_cluster(api, sim, 201, tls_mode="insecure", fingerprint="")
    assert body["insecure"] is True


def test_plain_users_cannot_register(api_for, user, sim):
    api = api_for(user)
    api.post("/api/v1/clusters/", cluster_values(sim), expect=403)
    assert api.get("/api/v1/clusters/")["count"] == 0
    assert not Cluster.objects.exists()


def test_form_registers_with_confirmed_fingerprint(client, sim):
    data = {**cluster_values(sim), "name": "lab", "confirm_fingerprint": "on"}
    response = client.post("/clusters/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    cluster = Cluster.objects.get(name="lab")
    assert response["Location"] == f"/clusters/{cluster.pk}/"


def test_form_fetches_the_fingerprint_and_asks_to_confirm_it(client, sim):
    data = {**cluster_values(sim, fingerprint=""), "name": "lab"}
    response = client.post("/clusters/add/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert sim.fingerprint in page  # shown, and filled into the field
    assert sim.token_secret not in page  # the secret is never rendered back
    assert not Cluster.objects.exists()
    # Submitting the shown fingerprint without ticking the confirmation is refused too.
    response = client.post("/clusters/add/", {**data, "fingerprint": sim.fingerprint})
    assert response.status_code == 400
    assert "Confirm that you compared" in response.content.decode()
    assert not Cluster.objects.exists()


def test_form_fingerprint_button_fetches_it(client, sim):
    response = client.post("/clusters/fingerprint/", {"api_url": sim.url})
    assert response.status_code == 200
    assert sim.fingerprint in response.content.decode()


@pytest.mark.parametrize("overrides,field,text", [
    ({"token_secret": "wrong"}, "token_secret", "401"),
    ({"fingerprint": WRONG_FP}, "fingerprint", "fingerprint mismatch"),
    ({"api_url": "https://127.0.0.1:1"}, "api_url", "connection refused"),
])
def test_form_shows_connection_failures_on_the_field(client, sim, overrides, field, text):
    data = {**cluster_values(sim, **overrides), "name": "lab", "confirm_fingerprint": "on"}
    response = client.post("/clusters/add/", data)
    assert response.status_code == 400
    form = response.context["form"]
    assert any(text in e for e in form.errors[field]), form.errors
    assert not Cluster.objects.exists()


def test_edit_form_keeps_secret_and_name_when_left_empty(client, cluster, sim):
    data = {**cluster_values(sim), "name": "", "token_secret": "", "sync_interval_active": "3"}
    response = client.post(f"/clusters/{cluster.pk}/edit/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster.refresh_from_db()
    assert cluster.name == "demo" and cluster.token_secret == sim.token_secret
    assert cluster.sync_interval_active == 3
    page = client.get(f"/clusters/{cluster.pk}/edit/").content.decode()
    assert sim.token_secret not in page


def test_the_same_url_twice_is_refused_naming_the_registration(api, sim):
    post_cluster(api, sim, 201, name="prod")
    port = sim.url.rsplit(":", 1)[1]
    # Written differently (no scheme, trailing path): still the same Proxmox API.
    body = post_cluster(api, sim, 400, name="again", api_url=f"127.0.0.1:{port}/api2/json/")
    assert body["errors"]["api_url"] == [f"This Proxmox API is already registered as cluster 'prod' ({sim.url})."]
    assert Cluster.objects.count() == 1
    assert AuditEntry.objects.filter(action="nodes.cluster_create", result="failure").exists()


def test_the_same_proxmox_cluster_by_another_url_is_refused(api, sim):
    post_cluster(api, sim, 201, name="prod")
    other_url = sim.url.replace("127.0.0.1", "localhost")  # same server, another name for it
    body = post_cluster(api, sim, 400, name="again", api_url=other_url)
    message = body["errors"]["api_url"][0]
    assert "belongs to the Proxmox cluster 'demo', already registered as cluster 'prod'" in message
    assert Cluster.objects.count() == 1


def test_editing_a_cluster_to_another_ones_url_is_refused(api, sim):
    post_cluster(api, sim, 201, name="prod")
    other = Cluster.objects.create(name="old", api_url="https://192.0.2.1:8006", token_id="a@pve!b",
                                   token_secret="x", tls_mode="insecure", pve_cluster_name="elsewhere")
    body = api.patch(f"/api/v1/clusters/{other.pk}/", {"api_url": sim.url},
                     expect=400)
    assert "already registered as cluster 'prod'" in body["errors"]["api_url"][0]


def test_form_refuses_a_second_registration_on_the_url_field(client, sim):
    data = {**cluster_values(sim), "confirm_fingerprint": "on"}
    assert client.post("/clusters/add/", {**data, "name": "lab"}).status_code == 302
    response = client.post("/clusters/add/", {**data, "name": "lab2", "api_url": sim.url + "/"})
    assert response.status_code == 400
    assert "already registered as cluster &#x27;lab&#x27;" in response.content.decode()
    assert Cluster.objects.count() == 1
