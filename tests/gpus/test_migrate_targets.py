"""Migration targets of a guest holding a GPU (issue 12): only nodes with a free card of its
profile are offered, each other node refused in words; a running VM moves live only with an mdev
whose mapping is `live-migration-capable`, never with a passed-through card. pvesim, no worker."""

from __future__ import annotations

import pytest

from apps.gpus.models import GpuAllocation, GpuDevice, GpuProfile, PciMapping
from tests.fixtures import gpu_inventory
from tests.guests.test_migrate import targets

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cards(sim_cluster):
    """The demo cluster's GPU inventory: L40S cards on pve1, an A16 on pve2, none on pve3."""
    gpu_inventory(sim_cluster)  # waits out a refresh the worker may be running
    pve1 = list(GpuDevice.objects.filter(cluster=sim_cluster, node__name="pve1").order_by("pci_id"))
    a16 = GpuDevice.objects.get(cluster=sim_cluster, node__name="pve2")
    return sim_cluster, pve1, a16


def by_node(plan):
    return {t["node"]: t for t in plan["targets"]}


def vgpu(cluster, devices, *, live: bool) -> GpuProfile:
    profile = GpuProfile.objects.create(cluster=cluster, name="A16 4Q", kind="mdev", mdev_type="nvidia-747",
                                        mapping_id="vgpu-a16", shares=4)
    profile.devices.set(devices)
    PciMapping.objects.update_or_create(cluster=cluster, mapping_id="vgpu-a16", defaults={"mdev": True,
                                        "live_migration_capable": live})
    return profile


def test_a_vgpu_vm_is_offered_only_nodes_with_a_free_instance(cards, api):
    cluster, pve1, a16 = cards
    profile = vgpu(cluster, [a16, pve1[0]], live=True)
    GpuAllocation.objects.create(profile=profile, device=a16, cluster=cluster, vmid=101, state="active")

    plan = targets(api, cluster, 101)  # VM 101 runs on pve2
    assert plan["mode"] == "live" and plan["blockers"] == []
    nodes = by_node(plan)
    assert nodes["pve1"]["allowed"] and nodes["pve1"]["reasons"] == []
    assert not nodes["pve3"]["allowed"]
    assert nodes["pve3"]["reasons"] == ["no free card of GPU profile 'A16 4Q' on pve3"]

    for vmid in range(900, 904):  # the pve1 card's four instances are taken
        GpuAllocation.objects.create(profile=profile, device=pve1[0], cluster=cluster, vmid=vmid, state="active")
    nodes = by_node(targets(api, cluster, 101))
    assert nodes["pve1"]["reasons"] == ["no free card of GPU profile 'A16 4Q' on pve1"]
    assert not any(t["allowed"] for t in nodes.values())


def test_a_running_vgpu_vm_moves_live_only_when_the_mapping_allows_it(cards, api):
    cluster, pve1, a16 = cards
    profile = vgpu(cluster, [a16, pve1[0]], live=False)
    GpuAllocation.objects.create(profile=profile, device=a16, cluster=cluster, vmid=101, state="active")

    nodes = by_node(targets(api, cluster, 101))
    assert not nodes["pve1"]["allowed"]
    assert any("not marked live-migration-capable" in r for r in nodes["pve1"]["reasons"])


def test_a_passthrough_vm_is_offered_offline_migration_only(cards, api):
    cluster, pve1, a16 = cards
    whole = GpuProfile.objects.create(cluster=cluster, name="any card", kind="passthrough", mapping_id="any")
    whole.devices.set([*pve1, a16])
    PciMapping.objects.update_or_create(cluster=cluster, mapping_id="any", defaults={"live_migration_capable": True})
    GpuAllocation.objects.create(profile=whole, device=a16, cluster=cluster, vmid=101, exclusive=True,
                                 state="active")
    GpuAllocation.objects.create(profile=whole, device=pve1[0], cluster=cluster, vmid=104, exclusive=True,
                                 state="active")

    running = targets(api, cluster, 101)  # running on pve2: no node, whatever the mapping says
    assert not any(t["allowed"] for t in running["targets"])
    assert any("cannot be live-migrated" in r and "shut it down" in r for r in running["blockers"])

    stopped = targets(api, cluster, 104)  # stopped on pve3: offline to pve1's free card (pve2's is 101's)
    assert stopped["mode"] == "offline"
    nodes = by_node(stopped)
    assert nodes["pve1"]["allowed"]
    assert nodes["pve2"]["reasons"] == ["no free card of GPU profile 'any card' on pve2"]
