"""Why the other nodes were refused, for a GPU profile: per node in the create wizard's placement
step (re-planned when the GPU choice changes) and in the API's 400: no card of the profile there,
no free card / mdev instance / container share left, not enough memory or storage."""

from __future__ import annotations

import re

import pytest

from apps.gpus.models import GpuAllocation, GpuDevice
from apps.nodes.models import Node
from apps.operations.models import Operation

from .test_allocations import VM_URL, gpus, profile, vm_body  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

WIZARD = "/guests/create/vm/"
HX = {"HTTP_HX_REQUEST": "true"}


def wizard(client, nav: str, **fields) -> str:
    data = {"_step": "placement", "_nav": nav, "source": "iso", "iso": "nfs-store:iso/debian-13.1.0-amd64-netinst.iso",
            "clone": "linked", "name": "vdi-30", "cores": "2", "memory": "2048", "storage": "ceph-rbd",
            "disk_size": "10", "bridge": "vmbr0", "ostype": "l26", "ip_mode": "dhcp", "node": ""}
    data.update(fields)
    return client.post(WIZARD, data, **HX).content.decode()


def node_rows(page: str) -> dict[str, str]:
    """The placement table: node -> its row's text (verdict and reasons)."""
    table = page[page.index('id="placement-nodes"'):page.index("</table>", page.index('id="placement-nodes"'))]
    rows = re.findall(r'<tr class="node-(?:ok|refused)" data-node="([^"]+)">(.*?)</tr>', table, re.S)
    return {node: " ".join(re.sub(r"<[^>]+>", " ", html).split()) for node, html in rows}


def fill(profile_, device, count: int) -> None:
    for i in range(count):
        GpuAllocation.objects.create(profile=profile_, device=device, cluster=device.cluster, vmid=900 + i,
                                     guest_name=f"held-{i}", state="active")


def test_the_wizard_says_per_node_why_it_cannot_take_the_gpu(gpus, client, operator):
    four_q = profile(gpus, operator, preset="a16-4q")
    rows = node_rows(wizard(client, "refresh", gpu_profile=str(four_q.pk)))
    assert rows["pve2"].startswith("pve2 chosen ✓ yes") and "4 free A16 4Q vGPU" in rows["pve2"]
    assert rows["pve1"] == "pve1 ✗ no pve1 has no card of A16 4Q vGPU"
    assert rows["pve3"] == "pve3 ✗ no pve3 has no card of A16 4Q vGPU"
    # Without a GPU every online node can take it.
    assert all("✓ yes" in text for text in node_rows(wizard(client, "refresh")).values())

    # Every instance held: the profile is refused on its field, and the table still says why per node.
    fill(four_q, GpuDevice.objects.get(cluster=gpus, node__name="pve2"), 4)
    page = wizard(client, "next", gpu_profile=str(four_q.pk))
    assert '<section class="step" data-step="placement">' in page  # stays on the step with the error
    assert "no node has a free A16 4Q vGPU" in page
    rows = node_rows(page)
    assert rows["pve2"] == ("pve2 ✗ no no free A16 4Q vGPU on pve2 (4 of 4 held): no nvidia-747 vGPU instance left")
    assert rows["pve1"] == "pve1 ✗ no pve1 has no card of A16 4Q vGPU"
    assert not Operation.objects.exists()


def test_a_node_with_a_free_card_but_too_little_memory_says_so(gpus, client, api, operator):
    whole = profile(gpus, operator, preset="l40s")
    Node.objects.filter(cluster=gpus, name="pve1").update(maxmem=1024 ** 3)  # 1 GiB: the VM asks for 2
    rows = node_rows(wizard(client, "next", gpu_profile=str(whole.pk)))
    assert rows["pve1"] == "pve1 ✗ no node pve1 has only 1 GiB of memory"
    assert rows["pve2"] == "pve2 ✗ no pve2 has no card of L40S full card"
    # The API's refusal names every node and its reason.
    errors = api.post(VM_URL, vm_body("train-9", whole.pk), expect=400)["errors"]
    assert errors == {"node": ["no online node can take it: node pve1 has only 1 GiB of memory; "
                               "pve2 has no card of L40S full card; pve3 has no card of L40S full card"]}
    # Asking for that node by name: the reason lands on its field.
    errors = api.post(VM_URL, vm_body("train-9", whole.pk, node="pve1"), expect=400)["errors"]
    assert errors == {"memory": ["node pve1 has only 1 GiB of memory"]}
    errors = api.post(VM_URL, vm_body("train-9", whole.pk, node="pve3"), expect=400)["errors"]
    assert errors == {"node": ["pve3 has no card of L40S full card"]}


def test_each_kind_names_what_is_used_up(gpus, operator):
    from apps.gpus.placement import refusals_by_node

    pve1 = list(GpuDevice.objects.filter(cluster=gpus, node__name="pve1").order_by("pci_id"))
    whole = profile(gpus, operator, preset="l40s")
    for i, device in enumerate(pve1):
        GpuAllocation.objects.create(profile=whole, device=device, cluster=gpus, vmid=950 + i, exclusive=True,
                                     state="active")
    assert refusals_by_node(whole, ["pve1", "pve3"]) == {
        "pve1": "no free L40S full card on pve1 (2 of 2 held): held whole by another guest",
        "pve3": "pve3 has no card of L40S full card"}
    GpuAllocation.objects.all().delete()
    shared = profile(gpus, operator, preset="shared")
    fill(shared, pve1[0], 8)
    assert refusals_by_node(shared)["pve1"] == \
        "no free L40S shared on pve1 (8 of 8 held): no container share left (8 per card)"
