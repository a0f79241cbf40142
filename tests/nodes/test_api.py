"""REST API: filtering, pagination, scoping, constant query counts, no Proxmox call on reads."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.nodes import sync
from apps.nodes.models import Cluster, Node

pytestmark = pytest.mark.django_db


def make_clusters(n, nodes_each=3):
    for i in range(n):
        cluster = Cluster.objects.create(name=f"c{Cluster.objects.count()}-{i}", api_url="https://10.0.0.1:8006",
                                         token_id="a@pve!b", token_secret="s3cret-value", tls_mode="insecure")
        Node.objects.bulk_create(Node(cluster=cluster, name=f"pve{j}", status="online", maxcpu=8) for j in range(nodes_each))


@pytest.mark.parametrize("url", ["/api/v1/clusters/", "/api/v1/nodes/"])
def test_list_query_count_does_not_grow_with_rows(api, url):
    make_clusters(1)
    with CaptureQueriesContext(connection) as small:
        api.get(url)
    make_clusters(6)
    with CaptureQueriesContext(connection) as large:
        body = api.get(url)
    assert body["count"] >= 7
    assert len(large) == len(small)


@pytest.mark.parametrize("url", ["/clusters/", "/nodes/", "/"])
def test_page_query_count_does_not_grow_with_rows(client, url):
    make_clusters(1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    make_clusters(6)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)


def test_nodes_filter_and_order(api, cluster):
    sync.run_cycle(cluster.pk)
    Node.objects.filter(name="pve3").update(status="offline")
    body = api.get("/api/v1/nodes/", {"status": "offline"})
    assert [n["name"] for n in body["results"]] == ["pve3"]
    body = api.get("/api/v1/nodes/", {"q": "pve2"})
    assert [n["name"] for n in body["results"]] == ["pve2"]
    body = api.get("/api/v1/nodes/", {"ordering": "-name", "cluster": cluster.pk})
    assert [n["name"] for n in body["results"]] == ["pve3", "pve2", "pve1"]
    api.get("/api/v1/nodes/", {"status": "sideways"}, expect=400)


def test_reads_never_call_proxmox(api, client, cluster, sim):
    sync.run_cycle(cluster.pk)
    node = Node.objects.filter(cluster=cluster).first()
    sim.admin("DELETE", "/counters")
    api.get("/api/v1/clusters/")
    api.get(f"/api/v1/clusters/{cluster.pk}/")
    api.get("/api/v1/nodes/")
    for url in ["/", "/clusters/", f"/clusters/{cluster.pk}/", "/nodes/", f"/nodes/{node.pk}/"]:
        assert client.get(url).status_code == 200
    assert sim.counters()["total"] == 0


def test_secret_never_in_pages_or_api(api, client, cluster, sim):
    sync.run_cycle(cluster.pk)
    node = Node.objects.filter(cluster=cluster).first()
    for url in ["/api/v1/clusters/", f"/api/v1/clusters/{cluster.pk}/", "/api/v1/nodes/"]:
        api.get(url)
        assert sim.token_secret not in api.last.content.decode()
    for url in ["/", "/clusters/", f"/clusters/{cluster.pk}/", f"/clusters/{cluster.pk}/edit/", f"/nodes/{node.pk}/",
                "/metrics"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert sim.token_secret not in response.content.decode(), url


def test_plain_users_see_nothing(api_for, user, cluster):
    sync.run_cycle(cluster.pk)
    api = api_for(user)
    assert api.get("/api/v1/clusters/")["count"] == 0
    assert api.get("/api/v1/nodes/")["count"] == 0
    api.get(f"/api/v1/clusters/{cluster.pk}/", expect=404)
    api.post(f"/api/v1/clusters/{cluster.pk}/sync/", expect=404)  # unseen: 404 before any 403


def test_patch_name_keeps_connection_and_secret(api, cluster, sim):
    body = api.patch(f"/api/v1/clusters/{cluster.pk}/", {"name": "renamed"})
    assert body["name"] == "renamed"
    cluster.refresh_from_db()
    assert cluster.token_secret == sim.token_secret


def test_patch_with_a_bad_secret_is_refused_and_keeps_the_old_one(api, cluster, sim):
    body = api.patch(f"/api/v1/clusters/{cluster.pk}/", {"token_secret": "wrong"}, expect=400)
    assert "401" in body["errors"]["token_secret"][0]
    cluster.refresh_from_db()
    assert cluster.token_secret == sim.token_secret


def test_delete_cluster(api, cluster):
    sync.run_cycle(cluster.pk)
    api.delete(f"/api/v1/clusters/{cluster.pk}/")
    assert not Cluster.objects.exists() and not Node.objects.exists()


def test_metrics_show_sync_figures(client, cluster):
    sync.run_cycle(cluster.pk)
    text = client.get("/metrics").content.decode()
    assert 'datacenter_sync_duration_seconds{cluster="demo"' in text
    assert 'datacenter_sync_age_seconds{cluster="demo"' in text
    assert 'datacenter_sync_proxmox_calls_total{cluster="demo",cluster_id="%d",method="GET",path="/cluster/resources"} 1' % cluster.pk in text
    assert 'datacenter_sync_watchers{cluster="demo"' in text


def test_secret_not_in_admin(admin_client, cluster, sim):
    response = admin_client.get(f"/admin/nodes/cluster/{cluster.pk}/change/")
    assert response.status_code == 200
    assert sim.token_secret not in response.content.decode()
