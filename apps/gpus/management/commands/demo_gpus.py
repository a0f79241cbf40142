"""`manage.py demo_gpus --cluster demo`: the demo cluster's GPU profiles, so the GPU map, the
profile list and the create wizard show something on first run.

Reads the cluster's GPU inventory (the refresh's bounded calls), then defines, unless a profile of
that name exists (an operator's edits are kept):

    L40S full card        passthrough of pve1's first L40S (mapping gpu-l40s), offered to acme
    L40S shared           pve1's second L40S shared by up to 8 containers (/dev/nvidia1), both tenants
    A16 4Q vGPU           4 GiB slices of pve2's A16 (mapping vgpu-a16, nvidia-747), both tenants

The scenario's VMs 102 (whole L40S) and 103 (an A16-4Q slice) hold GPUs given outside the portal:
the refresh after the profiles are saved adopts them, so the map names them at once.
"""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.gpus import profiles
from apps.gpus.models import GpuDevice, GpuProfile
from apps.gpus.services import gpu_inventory_refresh
from apps.nodes.models import Cluster
from apps.permissions.models import Tenant

# name -> (kind, node, PCI id, fields); devices are looked up in the inventory.
PROFILES = {
    "L40S full card": ("passthrough", "pve1", "0000:41:00.0", {
        "mapping_id": "gpu-l40s", "description": "A whole NVIDIA L40S (48 GB) passed through to one VM",
        "tenants": ["acme"], "q35": True, "ovmf": True}),
    "L40S shared": ("lxc", "pve1", "0000:c1:00.0", {
        "description": "One L40S time-sliced by up to 8 containers (CUDA)", "shares": 8, "gid": 44, "mode": "0666",
        "device_nodes": ["/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"], "tenants": ["acme", "globex"]}),
    "A16 4Q vGPU": ("mdev", "pve2", "0000:81:00.0", {
        "mapping_id": "vgpu-a16", "mdev_type": "nvidia-747", "description": "A 4 GB NVIDIA A16 vGPU slice (VDI)",
        "tenants": ["acme", "globex"], "q35": True}),
}


class Command(BaseCommand):
    help = "Define the demo cluster's GPU profiles (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--cluster", default="demo", help="cluster name in the control plane")
        parser.add_argument("--user", default="operator", help="the operator who defines them (audited)")
        parser.add_argument("--wait", type=float, default=60.0,
                            help="seconds to wait for a GPU refresh a worker is running")

    def handle(self, *args, **options):
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named '{options['cluster']}'")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user '{options['user']}'")
        self._refresh(cluster, options["wait"])
        made = 0
        for name, (kind, node, pci_id, fields) in PROFILES.items():
            if GpuProfile.objects.filter(cluster=cluster, name=name).exists():
                continue
            device = GpuDevice.objects.filter(cluster=cluster, node__name=node, pci_id=pci_id).first()
            if device is None:
                self.stdout.write(f"GPU profile '{name}' skipped: no GPU {pci_id} on {node} in the inventory")
                continue
            tenants = list(Tenant.objects.filter(slug__in=fields["tenants"]).values_list("pk", flat=True))
            data = {**fields, "name": name, "kind": kind, "devices": [device.pk], "tenants": tenants}
            try:
                profiles.gpu_profile_save(user=user, cluster=cluster, data=data)
            except ValidationError as exc:
                raise CommandError(f"GPU profile '{name}': {exc.message_dict}") from exc
            made += 1
            self.stdout.write(f"defined GPU profile '{name}' ({kind}, {node} {pci_id})")
        if made:
            self._refresh(cluster, options["wait"])  # the mappings as written, and the guests holding cards
        if not cluster.has_root_credential:
            self.stdout.write("note: containers cannot be given 'L40S shared' until the cluster has a root@pam "
                              "credential (Proxmox allows devN to root@pam alone)")

    def _refresh(self, cluster: Cluster, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            result = gpu_inventory_refresh(cluster=cluster)
            if not result.skipped:
                if result.errors:
                    self.stdout.write(f"GPU inventory of '{cluster.name}': {'; '.join(result.errors)}")
                return
            if time.monotonic() >= deadline:
                raise CommandError(f"a worker's GPU refresh of '{cluster.name}' still holds its lock after {wait:.0f}s")
            time.sleep(0.5)
