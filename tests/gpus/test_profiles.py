"""GPU profiles against pvesim's GPU scenario: a profile writes its cluster PCI mapping, bad input
leaves nothing on Proxmox or in the database, tenants see only what is offered to them, and the
API lists profiles with their free places; allocations keep whole cards exclusive."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.gpus.models import GpuAllocation, GpuDevice, GpuProfile
from apps.gpus.placement import free_by_node
from apps.gpus.services import gpu_inventory_refresh
from apps.permissions.models import Membership, Tenant, TenantPool
from apps.proxmox import gpus as pve_gpus

from tests.conftest import Api

pytestmark = pytest.mark.django_db

URL = "/api/v1/gpu-profiles/"


@pytest.fixture
def inventoried(sim_cluster):
    gpu_inventory_refresh(cluster=sim_cluster)
    return sim_cluster


def l40s(cluster):
    return list(GpuDevice.objects.filter(cluster=cluster, node__name="pve1").order_by("pci_id"))


def a16(cluster):
    return GpuDevice.objects.get(cluster=cluster, node__name="pve2")


def test_a_profile_creates_its_mapping_on_proxmox_and_keeps_it(inventoried, api, pve):
    cards = l40s(inventoried)
    body = api.post(URL, {"cluster": inventoried.pk, "name": "L40S full card", "kind": "passthrough",
                          "devices": [c.pk for c in cards], "mapping_id": "l40s-full"}, expect=201)
    assert body["free"] == {"pve1": 2} and body["quota_resource"] == f"gpu:{body['id']}"
    mapping = pve.get("cluster/mapping/pci/l40s-full")
    assert sorted(mapping["map"]) == [
        "node=pve1,path=0000:41:00.0,id=10de:26b9,subsystem-id=10de:1851,iommugroup=40",
        "node=pve1,path=0000:c1:00.0,id=10de:26b9,subsystem-id=10de:1851,iommugroup=72"]
    assert mapping["description"] == "L40S full card"
    # Proxmox's own check of the new mapping against the node's hardware finds nothing wrong.
    checked = next(m for m in pve.get("cluster/mapping/pci", **{"check-node": "pve1"}) if m["id"] == "l40s-full")
    assert checked["checks"] == []

    # One card less: the mapping follows the profile.
    api.patch(f"{URL}{body['id']}/", {"devices": [cards[0].pk]}, expect=200)
    assert pve.get("cluster/mapping/pci/l40s-full")["map"] == [
        "node=pve1,path=0000:41:00.0,id=10de:26b9,subsystem-id=10de:1851,iommugroup=40"]
    assert api.get(f"{URL}{body['id']}/")["free"] == {"pve1": 1}


def test_an_mdev_profile_maintains_an_existing_mapping(inventoried, api, pve):
    body = api.post(URL, {"cluster": inventoried.pk, "name": "A16 4Q vGPU", "kind": "mdev", "mdev_type": "nvidia-747",
                          "devices": [a16(inventoried).pk], "mapping_id": "vgpu-a16"}, expect=201)
    mapping = pve.get("cluster/mapping/pci/vgpu-a16")
    assert mapping["mdev"] == 1 and mapping["description"] == "A16 4Q vGPU"
    assert mapping["map"] == ["node=pve2,path=0000:81:00.0,id=10de:25b6,subsystem-id=10de:14a9,iommugroup=55"]
    assert body["free"] == {"pve2": 4}  # the type's max_instance=4; VM 103's instance is unknown until read


@pytest.mark.parametrize("change, field", [
    ({"mdev_type": "nvidia-999"}, "mdev_type"),
    ({"mapping_id": "9-starts-with-a-digit"}, "mapping_id"),
    ({"devices": []}, "devices"),
    ({"shares": 0}, "shares"),
    ({"tenants": [987654]}, "tenants"),
])
def test_bad_input_names_the_field_and_leaves_nothing(inventoried, api, pve, change, field):
    body = {"cluster": inventoried.pk, "name": "broken", "kind": "mdev", "mdev_type": "nvidia-747",
            "devices": [a16(inventoried).pk], "mapping_id": "new-mapping", **change}
    errors = api.post(URL, body, expect=400)["errors"]
    assert field in errors, errors
    assert not GpuProfile.objects.exists()
    assert "new-mapping" not in {m["id"] for m in pve.get("cluster/mapping/pci")}


def test_container_profile_needs_device_nodes_and_a_share_count(inventoried, api, pve):
    card = l40s(inventoried)[0]
    errors = api.post(URL, {"cluster": inventoried.pk, "name": "shared", "kind": "lxc", "devices": [card.pk],
                            "device_nodes": ["/etc/passwd"], "mode": "666"}, expect=400)["errors"]
    assert set(errors) == {"device_nodes", "shares", "mode"}
    body = api.post(URL, {"cluster": inventoried.pk, "name": "L40S shared, 8 containers", "kind": "lxc",
                          "devices": [card.pk], "device_nodes": ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"],
                          "shares": 8, "gid": 44, "mode": "0666"}, expect=201)
    assert body["free"] == {"pve1": 8} and body["mapping_id"] == ""
    mappings_before = {m["id"] for m in pve.get("cluster/mapping/pci")}
    assert mappings_before == {"gpu-l40s", "vgpu-a16"}  # device nodes need no mapping


@pytest.mark.sparse
def test_profiles_against_a_sparse_cluster(pvesim_sparse, settings):
    """Where the schema marks fields optional (subsystem ids, names, iommugroup, mdev's `name`),
    the profile still writes a mapping that names node, path and id."""
    from django.contrib.auth import get_user_model

    from apps.nodes.models import Cluster
    from apps.nodes.services import cluster_client
    from apps.nodes.sync import run_cycle
    from apps.operations.clients import set_client_factory

    pvesim_sparse.reset()
    cluster = Cluster.objects.create(name="sparse", api_url=pvesim_sparse.url, token_id=pvesim_sparse.token_id,
                                     token_secret=pvesim_sparse.token_secret, tls_mode="pin",
                                     fingerprint=pvesim_sparse.fingerprint)
    previous = set_client_factory(lambda cluster_id: cluster_client(Cluster.objects.get(pk=cluster_id)))
    try:
        assert run_cycle(cluster.pk).ok
        gpu_inventory_refresh(cluster=cluster)
        cards = list(GpuDevice.objects.filter(cluster=cluster, node__name="pve1"))
        assert cards
        operator = get_user_model().objects.create_user(username="op-sparse", password="x" * 12, is_staff=True)
        body = Api(operator).post(URL, {"cluster": cluster.pk, "name": "whole", "kind": "passthrough",
                                        "devices": [c.pk for c in cards], "mapping_id": "sparse-full"}, expect=201)
        client = cluster_client(cluster)
        try:
            entries = pve_gpus.pci_mapping(client, "sparse-full")["map"]
        finally:
            client.close()
        assert len(entries) == len(cards)
        assert all(e.startswith("node=pve1,path=0000:") and ",id=" in e for e in entries)
        assert body["free"] == {"pve1": len(cards)}
    finally:
        set_client_factory(previous)


def test_tenants_see_only_profiles_offered_to_them_and_may_not_manage(inventoried, api, django_user_model, pve):
    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    for tenant in (acme, globex):
        TenantPool.objects.create(tenant=tenant, cluster=inventoried, pool=tenant.slug)
    offered = api.post(URL, {"cluster": inventoried.pk, "name": "A16 4Q", "kind": "mdev", "mdev_type": "nvidia-747",
                             "devices": [a16(inventoried).pk], "mapping_id": "vgpu-a16", "tenants": [acme.pk]},
                       expect=201)
    hidden = api.post(URL, {"cluster": inventoried.pk, "name": "L40S", "kind": "passthrough",
                            "devices": [l40s(inventoried)[0].pk], "mapping_id": "l40s-one"}, expect=201)
    member = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=member, tenant=acme, role="member")
    as_member = Api(member)
    assert [p["name"] for p in as_member.get(URL)["results"]] == ["A16 4Q"]
    as_member.get(f"{URL}{hidden['id']}/", expect=404)
    as_member.patch(f"{URL}{offered['id']}/", {"name": "mine now"}, expect=403)
    as_member.post(URL, {"cluster": inventoried.pk, "name": "x", "kind": "passthrough",
                         "devices": [l40s(inventoried)[1].pk], "mapping_id": "sneaky"}, expect=403)
    assert "sneaky" not in {m["id"] for m in pve.get("cluster/mapping/pci")}
    assert GpuProfile.objects.get(pk=offered["id"]).name == "A16 4Q"


def test_a_whole_card_has_one_holder_even_past_the_placement_check(inventoried):
    """The database refuses a second exclusive hold on one card, whatever the code above it does."""
    card = l40s(inventoried)[0]
    profile = GpuProfile.objects.create(cluster=inventoried, name="whole", kind="passthrough", mapping_id="gpu-l40s")
    profile.devices.set([card])
    GpuAllocation.objects.create(profile=profile, device=card, cluster=inventoried, vmid=500, exclusive=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        GpuAllocation.objects.create(profile=profile, device=card, cluster=inventoried, vmid=501, exclusive=True)
    assert free_by_node(profile) == {"pve1": 0}


def test_profile_pages_render_for_operators(inventoried, client):
    profile = GpuProfile.objects.create(cluster=inventoried, name="A16 4Q", kind="mdev", mapping_id="vgpu-a16",
                                        mdev_type="nvidia-747")
    profile.devices.set([a16(inventoried)])
    page = client.get("/gpus/profiles/")
    assert page.status_code == 200 and b"A16 4Q" in page.content and b"pve2: 4 free" in page.content
    form = client.get(f"/gpus/profiles/{profile.pk}/")
    assert form.status_code == 200 and b"No guest holds a GPU of this profile" in form.content
    # A bad POST answers the form with the field's error, and Proxmox is not asked.
    response = client.post("/gpus/profiles/add/", {"cluster": inventoried.pk, "name": "x", "kind": "mdev",
                                                    "devices": [a16(inventoried).pk], "mapping_id": "vgpu-a16",
                                                    "mdev_type": ""})
    assert response.status_code == 400 and b"choose the mdev type" in response.content
