from django.db import models


class GpuMode(models.TextChoices):
    """How a GPU is shared: a whole device per VM, or mediated devices (vGPU profiles)."""

    PASSTHROUGH = "passthrough", "Passthrough"
    VGPU = "vgpu", "vGPU"


# PCI base class 0x03: display controllers (VGA, 3D, other). Only these count as GPUs.
DISPLAY_CLASS_PREFIX = "0x03"
