"""Storage pages show what the HA sync stored: Ceph health on the list (and on a Ceph storage's
page), replication jobs on a ZFS storage's page; scoped like the HA page, read from our tables."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.ha.models import ReplicationJob
from apps.ha.services import ha_refresh
from apps.storage.models import Storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def refreshed(sim_cluster):
    ha_refresh(cluster=sim_cluster)
    return sim_cluster


def zfs_of(cluster, node):
    return Storage.objects.get(cluster=cluster, type="zfspool", node__name=node)


def test_operator_sees_ceph_on_the_list_and_replication_on_the_zfs_page(refreshed, client):
    html = client.get("/storage/").content.decode()
    assert f'id="ceph-{refreshed.pk}"' in html and "HEALTH_OK" in html and "OSDs" in html and "PGs" in html
    assert 'class="usage-bar' in html
    job = ReplicationJob.objects.get(cluster=refreshed, job_id="201-0")
    page = client.get(zfs_of(refreshed, job.source).get_absolute_url()).content.decode()
    assert 'id="replication-jobs"' in page and "201-0" in page and f"{job.source} → {job.target}" in page
    other = zfs_of(refreshed, job.target).get_absolute_url()  # the target node's ZFS: no job starts there
    assert "201-0" not in client.get(other).content.decode()
    rbd = Storage.objects.filter(cluster=refreshed, type="rbd").first()
    rbd_page = client.get(rbd.get_absolute_url()).content.decode()
    assert f'id="ceph-{refreshed.pk}"' in rbd_page and 'id="replication-jobs"' not in rbd_page


def test_tenants_see_only_their_own_jobs_and_no_ceph(refreshed, tenants, client):
    job = ReplicationJob.objects.select_related("guest__tenant").get(cluster=refreshed, job_id="201-0")
    owner = job.guest.tenant.slug
    stranger = "globex" if owner == "acme" else "acme"
    storage = zfs_of(refreshed, job.source)
    for slug, sees in ((owner, True), (stranger, False)):
        tenant = Client()
        tenant.force_login(tenants[slug])
        response = tenant.get(storage.get_absolute_url())
        assert response.status_code == 200, slug  # local-zfs holds both tenants' guests' disks
        html = response.content.decode()
        assert ("201-0" in html) is sees, slug
        assert "HEALTH_OK" not in html and 'id="ceph-' not in tenant.get("/storage/").content.decode()


def test_storage_list_queries_do_not_grow_with_rows(refreshed, client):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/storage/").status_code == 200
        return len(ctx)

    before = count()
    node = refreshed.nodes.first()
    for i in range(5):
        Storage.objects.create(cluster=refreshed, node=node, storage=f"extra-{i}", type="dir",
                               content=["images"], nodes=[node.name])
    assert count() == before
