"""Guests API: list/detail with filters and constant query counts, scoping, field errors."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.guests.models import Guest
from apps.operations.models import Operation

pytestmark = pytest.mark.django_db


def count_queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        api.get(url)
    return len(ctx.captured_queries)


def test_list_query_count_is_constant(sim_cluster, api):
    assert count_queries(api, "/api/v1/guests/?page_size=1") == count_queries(api, "/api/v1/guests/?page_size=100")


def test_list_rows_are_the_serializers_output(sim_cluster, api):
    """The list answers from `.values()` (apps.core.api.lean): the same JSON as GuestSerializer, for
    guests with and without a node, tags, a lock, an HA state, running or not."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from apps.guests.api.serializers import GuestSerializer

    Guest.objects.filter(cluster=sim_cluster, vmid=100).update(lock="backup", hastate="started", tags=["a", "<b>"])
    Guest.objects.filter(cluster=sim_cluster, vmid=200).update(node=None)
    listed = api.get("/api/v1/guests/?page_size=500&ordering=vmid")["results"]
    request = Request(RequestFactory().get("/api/v1/guests/"))
    guests = Guest.objects.filter(pk__in=[row["id"] for row in listed]).select_related("node").order_by("vmid", "id")
    expected = GuestSerializer(guests, many=True, context={"request": request}).data
    assert len(listed) == len(expected) == Guest.objects.count() > 5
    assert {row["vmid"]: row["node"] for row in listed}[200] is None
    for got, want in zip(listed, expected):
        want = dict(want)
        assert list(got) == list(want)  # same fields, same order
        if want["uptime"] is not None:  # seconds since boot, read a moment apart
            assert got["uptime"] == pytest.approx(want["uptime"], abs=60)
            got["uptime"] = want["uptime"]
        assert got == want


def test_filters(sim_cluster, api):
    lxc = api.get("/api/v1/guests/?type=lxc")["results"]
    assert lxc and {g["type"] for g in lxc} == {"lxc"}
    on_pve3 = api.get("/api/v1/guests/?node=pve3")["results"]
    assert {g["vmid"] for g in on_pve3} >= {104, 201} and {g["node"] for g in on_pve3} == {"pve3"}
    stopped = api.get(f"/api/v1/guests/?status=stopped&cluster={sim_cluster.pk}")["results"]
    assert 104 in {g["vmid"] for g in stopped} and all(g["status"] == "stopped" for g in stopped)
    templates = api.get("/api/v1/guests/?template=true")["results"]
    assert [g["vmid"] for g in templates] == [9000]
    some = Guest.objects.filter(cluster=sim_cluster).exclude(pool="").first()
    assert some is not None
    pooled = api.get(f"/api/v1/guests/?pool={some.pool}")["results"]
    assert pooled and all(g["pool"] == some.pool for g in pooled)
    tagged = Guest.objects.filter(cluster=sim_cluster).exclude(tags=[]).first()
    if tagged is not None:
        rows = api.get(f"/api/v1/guests/?tag={tagged.tags[0]}")["results"]
        assert tagged.vmid in {g["vmid"] for g in rows}
    assert api.get("/api/v1/guests/?ordering=-vmid")["results"][0]["vmid"] == 9000
    body = api.get("/api/v1/guests/?status=sleeping", expect=400)
    assert "status" in body["errors"]


def test_detail_has_config_and_outsiders_get_404(sim_cluster, api, api_for, user):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=100)
    body = api.get(f"/api/v1/guests/{vm.pk}/")
    assert body["vmid"] == 100 and body["node"] == "pve1" and "config" in body
    member = api_for(user)
    assert member.get("/api/v1/guests/")["count"] == 0
    member.get(f"/api/v1/guests/{vm.pk}/", expect=404)
    member.post(f"/api/v1/guests/{vm.pk}/start/", {}, expect=404)
    assert Operation.objects.count() == 0


def test_action_field_errors(sim_cluster, api):
    ct = Guest.objects.get(cluster=sim_cluster, vmid=200)
    vm = Guest.objects.get(cluster=sim_cluster, vmid=100)
    body = api.post(f"/api/v1/guests/{ct.pk}/reset/", {}, expect=400)
    assert body["errors"] == {"action": ["containers cannot be reset; use reboot"]}
    body = api.post(f"/api/v1/guests/{vm.pk}/shutdown/", {"timeout": 0}, expect=400)
    assert "timeout" in body["errors"]
    body = api.post("/api/v1/guests/bulk/", {"action": "explode", "ids": []}, expect=400)
    assert set(body["errors"]) == {"action", "ids"}
    assert Operation.objects.count() == 0
