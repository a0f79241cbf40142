"""GPU inventory of a cluster: display-class PCI devices per node, their mdev (vGPU) types,
and the cluster's PCI resource mappings (pve-semantics §5).

Written only by services.gpu_inventory_refresh (a low-frequency task, never the sync cycle).
"""

import re

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse

from apps.core.models import TimeStampedModel

from .choices import AllocationState, GpuMode, ProfileKind


class GpuInventory(models.Model):
    """Per-cluster bookkeeping of the GPU refresh (one row per cluster)."""

    cluster = models.OneToOneField("nodes.Cluster", on_delete=models.CASCADE, related_name="gpu_inventory")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # Nodes that answered the last refresh: a node coming back online triggers a new one.
    nodes_seen = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"GPU inventory of {self.cluster_id}"


class GpuDevice(TimeStampedModel):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="gpus")
    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="gpus")
    pci_id = models.CharField("PCI id", max_length=32)  # 0000:41:00.0
    vendor_id = models.CharField(max_length=8)  # 0x10de
    device_id = models.CharField(max_length=8)
    vendor_name = models.CharField(max_length=200, blank=True)
    device_name = models.CharField(max_length=200, blank=True)
    subsystem_vendor_id = models.CharField(max_length=8, blank=True)
    subsystem_device_id = models.CharField(max_length=8, blank=True)
    subsystem_vendor_name = models.CharField(max_length=200, blank=True)
    subsystem_device_name = models.CharField(max_length=200, blank=True)
    pci_class = models.CharField("class", max_length=10)  # 0x030000
    iommugroup = models.IntegerField("IOMMU group", default=-1)  # -1: none
    mdev_capable = models.BooleanField("mdev capable", default=False)
    # True while the node cannot be asked (offline): the row is kept as last seen.
    stale = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster__name", "node__name", "pci_id"]
        verbose_name = "GPU"
        constraints = [models.UniqueConstraint(fields=["node", "pci_id"], name="gpu_unique_pci_id_per_node")]

    def __str__(self) -> str:
        return f"{self.name} ({self.node.name} {self.pci_id})"

    def get_absolute_url(self) -> str:
        return reverse("gpus:gpudevice_list") + f"?node={self.node.name}&cluster={self.cluster_id}"

    @property
    def name(self) -> str:
        """`NVIDIA L40S`: vendor's first word + the subsystem name (or the [bracketed] model)."""
        model = self.subsystem_device_name
        if not model:
            match = re.search(r"\[([^\]]+)\]", self.device_name)
            model = match.group(1) if match else (self.device_name or self.device_id)
        vendor = (self.vendor_name or self.vendor_id).split()[0]
        return model if model.lower().startswith(vendor.lower()) else f"{vendor} {model}"

    @property
    def mode(self) -> str:
        return GpuMode.VGPU if self.mdev_capable else GpuMode.PASSTHROUGH

    @property
    def pci_ids(self) -> str:
        """`10de:26b9` as mappings write it."""
        return f"{self.vendor_id[2:]}:{self.device_id[2:]}"


class MdevType(models.Model):
    """A mediated device type (vGPU profile) a device offers, with free instances now."""

    device = models.ForeignKey(GpuDevice, on_delete=models.CASCADE, related_name="mdev_types")
    type = models.CharField(max_length=100)  # nvidia-747
    name = models.CharField(max_length=200, blank=True)  # NVIDIA A16-4Q
    description = models.TextField(blank=True)
    available = models.PositiveIntegerField(default=0)
    # From `max_instance=N` in the description when the driver says it (NVIDIA does).
    max_instances = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["device", "type"]
        verbose_name = "mdev type"
        constraints = [models.UniqueConstraint(fields=["device", "type"], name="mdev_type_unique_per_device")]

    def __str__(self) -> str:
        return self.name or self.type

    @property
    def short_name(self) -> str:
        """`NVIDIA A16-4Q` -> `4Q` (the card already names the GPU)."""
        name = self.name or self.type
        return name.rsplit("-", 1)[1] if "-" in name and self.name else name

    @property
    def used(self) -> int | None:
        return None if self.max_instances is None else max(0, self.max_instances - self.available)

    @property
    def available_percent(self) -> float:
        if not self.max_instances:
            return 100.0 if self.available else 0.0
        return round(100.0 * min(self.available, self.max_instances) / self.max_instances, 1)


class PciMapping(TimeStampedModel):
    """A cluster resource mapping (`/cluster/mapping/pci`): the name VMs use instead of a host path."""

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="pci_mappings")
    mapping_id = models.CharField("mapping", max_length=100)
    description = models.TextField(blank=True)
    mdev = models.BooleanField(default=False)
    live_migration_capable = models.BooleanField(default=False)
    # Parsed map entries: [{"node": "pve1", "path": "0000:41:00.0", "id": "10de:26b9", ...}]
    map = models.JSONField(default=list, blank=True)
    # Devices the entries point at (node + path), resolved at each refresh.
    devices = models.ManyToManyField(GpuDevice, related_name="mappings", blank=True)

    class Meta:
        ordering = ["cluster__name", "mapping_id"]
        verbose_name = "PCI mapping"
        constraints = [models.UniqueConstraint(fields=["cluster", "mapping_id"], name="pci_mapping_unique_id")]

    def __str__(self) -> str:
        return self.mapping_id


class GpuProfile(TimeStampedModel):
    """An offering people choose ("L40S full card", "A16 4Q vGPU", "L40S shared, 8 containers"):
    the cards behind it, how they are shared, and the tenants it is offered to.

    Passthrough and mdev profiles are backed by a cluster PCI mapping the portal keeps on Proxmox
    (`mapping_id`, entries = the profile's devices); container profiles by device nodes."""

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="gpu_profiles")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ProfileKind.choices)
    description = models.CharField(max_length=300, blank=True)
    devices = models.ManyToManyField(GpuDevice, related_name="profiles", blank=True)
    mapping_id = models.CharField("mapping", max_length=100, blank=True)
    mdev_type = models.CharField("mdev type", max_length=100, blank=True)
    # Container profiles: device nodes per card, e.g. /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm.
    device_nodes = ArrayField(models.CharField(max_length=128), default=list, blank=True)
    gid = models.PositiveIntegerField("group id", null=True, blank=True)
    mode = models.CharField(max_length=4, blank=True)  # octal, 0666
    # How many guests one card takes: 1 for passthrough; mdev: the type's max instances unless set.
    shares = models.PositiveIntegerField(null=True, blank=True)
    q35 = models.BooleanField("q35 machine", default=True)  # pcie=1 needs q35
    ovmf = models.BooleanField("OVMF (UEFI) firmware", default=False)
    tenants = models.ManyToManyField("permissions.Tenant", related_name="gpu_profiles", blank=True)

    class Meta:
        ordering = ["cluster__name", "name"]
        verbose_name = "GPU profile"
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="gpu_profile_unique_name")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("gpus:gpuprofile", kwargs={"pk": self.pk})

    @property
    def guest_type(self) -> str:
        return "lxc" if self.kind == ProfileKind.LXC else "qemu"

    @property
    def quota_resource(self) -> str:
        return f"gpu:{self.pk}"


class GpuAllocation(models.Model):
    """One guest's hold on one card of a profile (a whole card, an mdev instance or a share).

    Made in the transaction that creates the operation giving the GPU (placement + quota), active
    once the guest's config holds it, gone when the GPU is removed or the guest is deleted.
    The database refuses a second hold on a whole card (`exclusive`)."""

    profile = models.ForeignKey(GpuProfile, on_delete=models.PROTECT, related_name="allocations")
    device = models.ForeignKey(GpuDevice, on_delete=models.CASCADE, related_name="allocations")
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="gpu_allocations")
    vmid = models.PositiveIntegerField("VMID")
    guest_name = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey("permissions.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="gpu_allocations")
    slots = models.CharField(max_length=64, blank=True)  # "hostpci0" | "dev0,dev1,dev2" once written
    exclusive = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=AllocationState.choices, default=AllocationState.RESERVED)
    operation_id = models.UUIDField(null=True, blank=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["device", "vmid"]
        verbose_name = "GPU allocation"
        constraints = [
            models.UniqueConstraint(fields=["device"], condition=models.Q(exclusive=True),
                                    name="gpu_allocation_one_holder_per_whole_card"),
            models.UniqueConstraint(fields=["cluster", "vmid", "profile"], name="gpu_allocation_once_per_guest"),
        ]

    def __str__(self) -> str:
        return f"{self.profile} for {self.vmid}"
