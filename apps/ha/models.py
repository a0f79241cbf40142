"""High availability as the sync last saw it, plus the history it observed.

HaClusterState (one per cluster), HaResource (one per HA service) and HaEvent (the timeline) are
written by the sync handler from the reads a cycle already makes (/cluster/status and
/cluster/ha/status/current). HaRule, ReplicationJob and the Ceph figures change rarely and are
read by the HA refresh task (a few calls per cluster per interval, whoever looks).
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse

from apps.core.models import TimeStampedModel

from .choices import EVENT_LEVEL, Affinity, EventKind, ResourceState, RuleType


class HaClusterState(models.Model):
    cluster = models.OneToOneField("nodes.Cluster", on_delete=models.CASCADE, related_name="ha")
    available = models.BooleanField(default=True)  # False: the cluster does not serve HA status
    quorate = models.BooleanField(null=True)
    quorum_status = models.CharField(max_length=200, blank=True)
    votes = models.PositiveIntegerField(default=0)  # nodes online (one vote each)
    expected_votes = models.PositiveIntegerField(default=0)
    master_node = models.CharField(max_length=100, blank=True)
    master_state = models.CharField(max_length=60, blank=True)
    fencing = models.CharField(max_length=20, blank=True)  # armed | standby | disarming | disarmed
    resource_mode = models.CharField(max_length=20, blank=True)
    # node -> {"state": "active", "watchdog": "watchdog active"}; members: node -> online (corosync)
    lrms = models.JSONField(default=dict, blank=True)
    members = models.JSONField(default=dict, blank=True)
    lost_at = models.JSONField(default=dict, blank=True)  # node -> ISO time the sync saw it leave
    ceph = models.JSONField(null=True, blank=True)  # CephHealth as a dict; None: no Ceph
    # node -> {sid: {"target", "failback"}}: what a maintenance drain moved and how to bring it back
    maintenance = models.JSONField(default=dict, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)  # rules, replication, Ceph
    refresh_error = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "HA cluster state"

    def __str__(self) -> str:
        return f"HA of {self.cluster_id}"

    @property
    def votes_needed(self) -> int:
        return self.expected_votes // 2 + 1


class HaResource(TimeStampedModel):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="ha_resources")
    sid = models.CharField("HA id", max_length=40)  # vm:100, ct:101
    vmid = models.PositiveIntegerField(null=True, blank=True)
    guest = models.ForeignKey("guests.Guest", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="ha_resources")
    request_state = models.CharField(max_length=16, blank=True, choices=ResourceState.choices)
    crm_state = models.CharField("CRM state", max_length=32, blank=True)
    state = models.CharField(max_length=32, blank=True)  # the verbose state people read
    node = models.CharField(max_length=100, blank=True)
    max_restart = models.PositiveIntegerField(null=True, blank=True)
    max_relocate = models.PositiveIntegerField(null=True, blank=True)
    failback = models.BooleanField(null=True)
    comment = models.CharField(max_length=4096, blank=True)
    group = models.CharField(max_length=100, blank=True)  # legacy group, before migration to rules
    # What its config holds that a failover needs elsewhere: storages of its disks, PCI mappings.
    # Read by the HA refresh (the guest's config when we have it, else one read per HA guest).
    storages = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    mappings = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    # When the HA refresh last read its config itself (the guests app had none): read again only
    # after HA_NEEDS_MAX_AGE, so the refresh's calls do not grow with the number of HA guests.
    needs_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "sid"]
        constraints = [models.UniqueConstraint(fields=["cluster", "sid"], name="ha_resource_unique_sid")]
        verbose_name = "HA resource"

    def __str__(self) -> str:
        return self.sid

    def get_absolute_url(self) -> str:
        return reverse("ha:index") + f"#ha-{self.sid.replace(':', '')}"  # the row's id on the HA page


class HaRule(TimeStampedModel):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="ha_rules")
    rule = models.CharField(max_length=100)
    type = models.CharField(max_length=20, choices=RuleType.choices)
    resources = ArrayField(models.CharField(max_length=40), default=list)
    nodes = models.JSONField(default=dict, blank=True)  # node -> priority (node affinity)
    strict = models.BooleanField(default=False)
    affinity = models.CharField(max_length=10, blank=True, choices=Affinity.choices)
    disable = models.BooleanField(default=False)
    comment = models.CharField(max_length=4096, blank=True)
    order = models.IntegerField(default=0)
    errors = models.JSONField(default=dict, blank=True)  # Proxmox's feasibility errors, if any
    from_group = models.CharField(max_length=100, blank=True)  # generated from a legacy HA group

    class Meta:
        ordering = ["cluster", "order", "rule"]
        constraints = [models.UniqueConstraint(fields=["cluster", "rule"], name="ha_rule_unique_name")]
        verbose_name = "HA rule"

    def __str__(self) -> str:
        return self.rule

    def get_absolute_url(self) -> str:
        return reverse("ha:harule_edit", kwargs={"ha_rule": self.pk})

    def sentence(self) -> str:
        """The rule in words: 'vm:100 prefer pve1 (2), then pve2 (1), then pve3'."""
        who = ", ".join(self.resources)
        if self.type == RuleType.RESOURCE_AFFINITY:
            return f"{who}: {'always on the same node' if self.affinity == Affinity.POSITIVE else 'never on the same node'}"
        ranked = sorted(self.nodes.items(), key=lambda kv: (-kv[1], kv[0]))
        tiers: list[str] = []
        for prio in sorted({p for _, p in ranked}, reverse=True):
            tiers.append(" or ".join(n for n, p in ranked if p == prio))
        where = ", then ".join(tiers)
        return f"{who}: {'only' if self.strict else 'prefer'} {where}" + ("" if self.strict else ", else any node")


class HaEvent(models.Model):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="ha_events")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=EventKind.choices, db_index=True)
    sid = models.CharField(max_length=40, blank=True)
    guest = models.ForeignKey("guests.Guest", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="ha_events")
    # The guest's tenant when it happened: tenants see their guests' events only.
    tenant = models.ForeignKey("permissions.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    node = models.CharField(max_length=100, blank=True)
    target = models.CharField(max_length=100, blank=True)
    message = models.TextField()
    why = models.TextField(blank=True)  # for placements: why this node

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["cluster", "-at"])]
        verbose_name = "HA event"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"

    @property
    def level(self) -> str:
        return EVENT_LEVEL.get(self.kind, "ok")


class ReplicationJobQuerySet(models.QuerySet):
    def active(self):
        """Jobs that keep copies current: enabled and not being removed (what a failover can count on)."""
        return self.filter(disable=False, remove_job="")


class ReplicationJob(models.Model):
    objects = ReplicationJobQuerySet.as_manager()

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="replication_jobs")
    job_id = models.CharField(max_length=30)  # <vmid>-<jobnum>
    vmid = models.PositiveIntegerField()
    guest = models.ForeignKey("guests.Guest", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="replication_jobs")
    source = models.CharField(max_length=100, blank=True)
    target = models.CharField(max_length=100)
    schedule = models.CharField(max_length=128, blank=True)
    rate = models.FloatField(null=True, blank=True)  # megabytes per second, as Proxmox counts
    comment = models.CharField(max_length=4096, blank=True)
    disable = models.BooleanField(default=False)
    # Set once the job was deleted: Proxmox keeps it listed until its next run has removed the
    # replication snapshots ("local") and the copies on the target too ("full").
    remove_job = models.CharField(max_length=8, blank=True)
    last_sync = models.DateTimeField(null=True, blank=True)
    last_try = models.DateTimeField(null=True, blank=True)
    next_sync = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    fail_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cluster", "job_id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "job_id"], name="replication_unique_job")]

    def __str__(self) -> str:
        return self.job_id

    @property
    def jobnum(self) -> int:
        return int(self.job_id.rsplit("-", 1)[-1])

    def guest_label(self) -> str:
        """'CT 201 proxy-01' (or 'guest 201' when the guest is not in our inventory)."""
        return f"{self.guest.kind} {self.vmid} {self.guest.name}" if self.guest else f"guest {self.vmid}"

    @property
    def rate_bytes(self) -> int | None:
        """The rate limit in bytes per second (Proxmox's megabytes are 10^6 bytes)."""
        return None if self.rate is None else int(self.rate * 1_000_000)
