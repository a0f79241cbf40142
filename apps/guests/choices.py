from django.db import models


class GuestType(models.TextChoices):
    QEMU = "qemu", "VM"
    LXC = "lxc", "Container"


class GuestStatus(models.TextChoices):
    """/cluster/resources status: the QMP state for VMs (pve-semantics §3.6)."""

    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    PAUSED = "paused", "Paused"
    SUSPENDED = "suspended", "Suspended"
    PRELAUNCH = "prelaunch", "Prelaunch"
    UNKNOWN = "unknown", "Unknown"


class PowerAction(models.TextChoices):
    START = "start", "Start"
    SHUTDOWN = "shutdown", "Shut down"
    STOP = "stop", "Stop"
    REBOOT = "reboot", "Reboot"
    RESET = "reset", "Reset"
    SUSPEND = "suspend", "Suspend"
    RESUME = "resume", "Resume"
