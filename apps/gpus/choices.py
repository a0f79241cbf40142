from django.db import models


class GpuMode(models.TextChoices):
    """How a GPU is shared: a whole device per VM, or mediated devices (vGPU profiles)."""

    PASSTHROUGH = "passthrough", "Passthrough"
    VGPU = "vgpu", "vGPU"


# PCI base class 0x03: display controllers (VGA, 3D, other). Only these count as GPUs.
DISPLAY_CLASS_PREFIX = "0x03"


class ProfileKind(models.TextChoices):
    """What a GPU profile hands out (issue: three ways to share)."""

    PASSTHROUGH = "passthrough", "Whole card (PCI passthrough)"
    MDEV = "mdev", "Slice of a card (mediated device / vGPU)"
    LXC = "lxc", "Shared card for containers (device nodes)"


class AllocationState(models.TextChoices):
    RESERVED = "reserved", "Reserved"  # an operation is giving it to the guest
    ACTIVE = "active", "In use"  # the guest's config holds it
