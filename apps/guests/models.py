"""Guests (QEMU VMs and LXC containers) as /cluster/resources reports them, plus their snapshots.

Inventory fields are written when they change; volatile figures (cpu, mem, disk, uptime) only when
they move beyond apps.nodes.sync's thresholds, so a quiet sync cycle writes no row. Config,
snapshots, usage history and task history are read per guest only when someone looks at it.
Backups are StorageContent rows (content=backup) with the guest's vmid, not a model of our own.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.core.models import TimeStampedModel
from apps.core.rendering import pk_url
from apps.proxmox.refs import GuestRef

from .choices import GuestStatus, GuestType


RUNNING_STATES = (GuestStatus.RUNNING, GuestStatus.PAUSED, GuestStatus.PRELAUNCH)


def uptime_seconds(status: str, booted_at, now=None) -> float | None:
    """Seconds since boot for a running guest, else None (Guest.uptime; the API list's rows)."""
    if booted_at is None or status not in RUNNING_STATES:
        return None
    return ((now or timezone.now()) - booted_at).total_seconds()


class Guest(TimeStampedModel):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="guests")
    vmid = models.PositiveIntegerField("VMID")
    type = models.CharField(max_length=4, choices=GuestType.choices)
    name = models.CharField(max_length=200, blank=True)
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="guests")
    status = models.CharField(max_length=16, choices=GuestStatus.choices, default=GuestStatus.UNKNOWN, db_index=True)
    template = models.BooleanField(default=False)
    lock = models.CharField(max_length=32, blank=True)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    pool = models.CharField(max_length=100, blank=True, db_index=True)
    # The tenant whose Proxmox pool holds it (TenantPool, set at sync); None: the operators'.
    tenant = models.ForeignKey("permissions.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="guests")
    hastate = models.CharField("HA state", max_length=32, blank=True)
    maxcpu = models.PositiveIntegerField(default=0)
    maxmem = models.BigIntegerField(default=0)
    maxdisk = models.BigIntegerField(default=0)
    # Volatile, threshold-written (see module docstring).
    cpu = models.FloatField(default=0)  # fraction of maxcpu
    mem = models.BigIntegerField(default=0)
    disk = models.BigIntegerField(default=0)
    booted_at = models.DateTimeField(null=True, blank=True)  # stable where uptime is not
    # Per-guest details, read on demand by guests.guest_refresh.
    config = models.JSONField(default=dict, blank=True)
    config_digest = models.CharField(max_length=64, blank=True)  # Proxmox's digest of `config`, for edits
    task_history = models.JSONField(default=list, blank=True)
    details_synced_at = models.DateTimeField(null=True, blank=True)
    details_error = models.TextField(blank=True)

    class Meta:
        ordering = ["cluster", "vmid"]
        constraints = [models.UniqueConstraint(fields=["cluster", "vmid"], name="guest_unique_vmid_per_cluster")]
        indexes = [models.Index(fields=["cluster", "type", "status"]),
                   # The lists' default order (page: vmid; API: vmid, id): a page of 10,000 guests reads
                   # its 100 rows from the index instead of sorting them all.
                   models.Index(fields=["vmid", "id"], name="guest_vmid_id_idx")]

    def __str__(self) -> str:
        return f"{self.vmid} ({self.name})" if self.name else str(self.vmid)

    def get_absolute_url(self) -> str:
        return pk_url("guests:guest", self.pk)  # reverse(), once per process rather than per row

    @property
    def kind(self) -> str:
        """What Proxmox calls it in messages: VM or CT."""
        return "VM" if self.type == GuestType.QEMU else "CT"

    @property
    def is_running(self) -> bool:
        return self.status in RUNNING_STATES

    @property
    def ref(self) -> GuestRef:
        """Where Proxmox keeps it, for the gateway's functions (needs node)."""
        return GuestRef(self.node.name if self.node_id else "", self.type, self.vmid)
    @property
    def uptime(self) -> float | None:
        return uptime_seconds(self.status, self.booted_at)

    @property
    def cpu_percent(self) -> float:
        return round(100.0 * self.cpu, 1)

    @property
    def mem_percent(self) -> float:
        return round(100.0 * self.mem / self.maxmem, 1) if self.maxmem else 0.0


class Snapshot(models.Model):
    guest = models.ForeignKey(Guest, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=40)
    description = models.TextField(blank=True)
    snaptime = models.DateTimeField(null=True, blank=True)
    parent = models.CharField(max_length=40, blank=True)
    vmstate = models.BooleanField(default=False)

    class Meta:
        ordering = ["guest", "snaptime", "name"]
        constraints = [models.UniqueConstraint(fields=["guest", "name"], name="snapshot_unique_name_per_guest")]

    def __str__(self) -> str:
        return self.name


class VmidReservation(models.Model):
    """A vmid held for a guest that an operation is about to create (create, clone, restore), so
    two requests never pick the same id and a retried operation reuses its own. The row goes when
    the operation ends; by then Proxmox either has the guest (its nextid skips it) or nothing."""

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="vmid_reservations")
    vmid = models.PositiveIntegerField("VMID")
    operation_id = models.UUIDField(null=True, blank=True, db_index=True)
    purpose = models.CharField(max_length=16, blank=True)  # create | clone | restore
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "vmid"], name="vmid_reservation_unique")]

    def __str__(self) -> str:
        return f"{self.vmid} ({self.purpose})"


class BackupJob(TimeStampedModel):
    """Mirror of one scheduled backup job of /cluster/backup (Proxmox holds the job and runs it;
    the portal writes through to Proxmox and re-reads the list)."""

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="backup_jobs")
    job_id = models.CharField("job id", max_length=50)
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(max_length=128)
    storage = models.CharField(max_length=100, blank=True)
    selection = models.CharField(max_length=8, default="vmid")  # vmid | pool | all
    vmids = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    pool = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=16, default="snapshot")
    compress = models.CharField(max_length=8, default="zstd")
    retention = models.JSONField(default=dict, blank=True)  # {"keep-last": 3, "keep-daily": 7, ...}
    comment = models.CharField(max_length=512, blank=True)
    next_run = models.DateTimeField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)  # the job as Proxmox returned it

    class Meta:
        ordering = ["cluster", "job_id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "job_id"], name="backup_job_unique_id")]

    def __str__(self) -> str:
        return self.job_id

    def get_absolute_url(self) -> str:
        return reverse("guests:backupjob_edit", kwargs={"pk": self.pk})
