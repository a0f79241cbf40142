"""Cluster (one Proxmox API endpoint + token) and Node (a host of that cluster).

Volatile figures (cpu, memory, disk use, uptime) are stored only when they move beyond a
threshold (see apps.nodes.sync), so a sync cycle where nothing really changed writes no row.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.core.models import EncryptedTextField, TimeStampedModel

from .choices import ClusterStatus, NodeStatus, TlsMode


class Cluster(TimeStampedModel):
    name = models.CharField(max_length=100, unique=True)
    api_url = models.CharField("API URL", max_length=255, help_text="https://host:8006")
    token_id = models.CharField("API token ID", max_length=200, help_text="user@realm!tokenname")
    # Never rendered, logged or returned (serializers mark it write-only).
    token_secret = EncryptedTextField("API token secret")
    tls_mode = models.CharField("TLS", max_length=10, choices=TlsMode.choices, default=TlsMode.PIN)
    ca_cert = models.TextField("CA certificate (PEM)", blank=True)
    fingerprint = models.CharField("SHA-256 fingerprint", max_length=95, blank=True)
    # Optional root@pam password, for the one write Proxmox grants root@pam alone (never a token):
    # a container's device passthrough (devN). Null = not configured. Never rendered, logged or returned.
    root_password = EncryptedTextField("root@pam password", null=True, blank=True)

    # What Proxmox told us at registration / last sync.
    pve_cluster_name = models.CharField(max_length=100, blank=True)
    pve_version = models.CharField(max_length=50, blank=True)
    quorate = models.BooleanField(null=True)

    # Aggregates over online nodes and storages (threshold-written like node usage).
    cpu_used = models.FloatField(default=0)  # cores busy
    cpu_total = models.PositiveIntegerField(default=0)
    mem_used = models.BigIntegerField(default=0)
    mem_total = models.BigIntegerField(default=0)
    storage_used = models.BigIntegerField(default=0)
    storage_total = models.BigIntegerField(default=0)

    # Sync bookkeeping.
    status = models.CharField(max_length=12, choices=ClusterStatus.choices, default=ClusterStatus.PENDING)
    last_error = models.TextField(blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)  # last successful cycle
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_sync_duration = models.FloatField(null=True, blank=True)  # seconds
    failures = models.PositiveIntegerField(default=0)  # consecutive, drives the backoff
    sync_interval_active = models.FloatField(null=True, blank=True, help_text="seconds; default SYNC_INTERVAL_ACTIVE")
    sync_interval_idle = models.FloatField(null=True, blank=True, help_text="seconds; default SYNC_INTERVAL_IDLE")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("nodes:cluster", args=[self.pk])

    @property
    def live_group(self) -> str:
        return f"cluster-{self.pk}"

    def client(self):
        """A Proxmox client for this cluster (see services.cluster_client)."""
        from .services import cluster_client

        return cluster_client(self)

    @property
    def has_root_credential(self) -> bool:
        return bool(self.root_password)

    @property
    def is_insecure(self) -> bool:
        return self.tls_mode == TlsMode.INSECURE

    @property
    def interval_active(self) -> float:
        return self.sync_interval_active or settings.SYNC_INTERVAL_ACTIVE

    @property
    def interval_idle(self) -> float:
        return self.sync_interval_idle or settings.SYNC_INTERVAL_IDLE

    @property
    def sync_age(self) -> float | None:
        """Seconds since the last successful sync (None before the first)."""
        if self.last_sync_at is None:
            return None
        return (timezone.now() - self.last_sync_at).total_seconds()

    @property
    def stale_after(self) -> float:
        """Data older than this (seconds) is shown as stale: a few missed idle cycles."""
        return 3 * self.interval_idle

    @property
    def is_stale(self) -> bool:
        """Shown data is older than stale_after, or the cluster stopped answering."""
        age = self.sync_age
        return self.status != ClusterStatus.OK or age is None or age > self.stale_after

    def percent(self, used, total) -> float:
        return round(100.0 * used / total, 1) if total else 0.0

    @property
    def cpu_percent(self):
        return self.percent(self.cpu_used, self.cpu_total)

    @property
    def mem_percent(self):
        return self.percent(self.mem_used, self.mem_total)

    @property
    def storage_percent(self):
        return self.percent(self.storage_used, self.storage_total)


class Node(TimeStampedModel):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=100)
    nodeid = models.PositiveIntegerField(null=True, blank=True)  # corosync node id
    ip = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=NodeStatus.choices, default=NodeStatus.UNKNOWN)
    online = models.BooleanField(default=False)  # corosync membership (/cluster/status)
    level = models.CharField("subscription", max_length=10, blank=True)
    ha_state = models.CharField("HA state", max_length=40, blank=True)  # LRM state: active, idle, maintenance...

    cpu = models.FloatField(default=0)  # fraction 0..1 of maxcpu
    maxcpu = models.PositiveIntegerField(default=0)
    mem = models.BigIntegerField(default=0)
    maxmem = models.BigIntegerField(default=0)
    disk = models.BigIntegerField(default=0)
    maxdisk = models.BigIntegerField(default=0)
    booted_at = models.DateTimeField(null=True, blank=True)  # stable where uptime is not
    pve_version = models.CharField("Proxmox VE version", max_length=50, blank=True)  # GET /nodes/{node}/version
    version_checked_at = models.DateTimeField(null=True, blank=True)
    bridges = ArrayField(models.CharField(max_length=64), default=list, blank=True)  # from GET /nodes/{node}/network

    class Meta:
        ordering = ["cluster__name", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_name_per_cluster")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("nodes:node", args=[self.pk])

    @property
    def cpu_percent(self) -> float:
        return round(100.0 * self.cpu, 1)

    @property
    def mem_percent(self) -> float:
        return round(100.0 * self.mem / self.maxmem, 1) if self.maxmem else 0.0

    @property
    def disk_percent(self) -> float:
        return round(100.0 * self.disk / self.maxdisk, 1) if self.maxdisk else 0.0

    @property
    def uptime(self) -> float | None:
        if self.booted_at is None or self.status != NodeStatus.ONLINE:
            return None
        return (timezone.now() - self.booted_at).total_seconds()
