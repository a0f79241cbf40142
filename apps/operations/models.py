"""Operation: one long-running action (usually one or more Proxmox tasks) and its event log."""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.core.fields import EncryptedTextField

from .choices import ACTIVE_STATUSES, EventLevel, OperationStatus


class Operation(models.Model):
    # The id is also the Celery task id, so a worker, the API and the browser name one thing.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)  # e.g. "guest.start", "task.follow"
    title = models.CharField(max_length=200, blank=True)
    # Generic target (type label + id as text) so operations never imports the apps above it.
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=200, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    cluster_id = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    # The tenant the operation acts for (its object's, or the creating actor's); None: operators'.
    tenant = models.ForeignKey("permissions.Tenant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="operations")
    status = models.CharField(max_length=16, choices=OperationStatus.choices,
                              default=OperationStatus.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0)  # 0-100
    eta = models.PositiveIntegerField(null=True, blank=True)  # seconds left, when progress allows
    upids = models.JSONField(default=list, blank=True)  # every Proxmox task started, in order
    current_upid = models.CharField(max_length=255, blank=True)
    log_position = models.PositiveIntegerField(default=0)  # lines of current_upid already saved
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    task_name = models.CharField(max_length=200, blank=True)
    task_kwargs = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="operations")
    cancel_requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.SET_NULL, related_name="+")
    last_seq = models.PositiveIntegerField(default=0)  # seq of the newest event
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # the reconciler's liveness signal
    # Step markers: the step in progress and the steps finished, so a resumed run skips what is done.
    step = models.CharField(max_length=32, blank=True)
    steps_done = models.JSONField(default=list, blank=True)
    # Set by the reconciler when it hands a stale running operation to a new worker; the first
    # delivery that clears it (conditional UPDATE) owns the run, a duplicate delivery does nothing.
    resume_token = models.CharField(max_length=64, blank=True)
    # What a task needs but must not travel in the queue (a CT root password): encrypted here,
    # erased when the operation ends.
    secret = EncryptedTextField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["target_type", "target_id"]),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        """What people read ("Migrate VM 101 (web-1) from pve1 to pve3"): the title given at
        creation, else the kind in words ("Guest migrate") and the target."""
        return self.title or f"{self.kind_display} {self.target_repr or self.target_id}".strip()

    @property
    def kind_display(self) -> str:
        """`guest.migrate` -> "Guest migrate", `storage.download_url` -> "Storage download url"."""
        return self.kind.replace(".", " ").replace("_", " ").capitalize()

    def get_absolute_url(self) -> str:
        return reverse("operations:operation", kwargs={"pk": self.pk})

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def group_name(self) -> str:
        return f"operation-{self.pk}"


class OperationEvent(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()  # 1, 2, 3... per operation; clients resume with ?after=
    level = models.CharField(max_length=10, choices=EventLevel.choices, default=EventLevel.INFO)
    message = models.TextField()
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["operation", "seq"]
        constraints = [models.UniqueConstraint(fields=["operation", "seq"], name="operation_event_seq_unique")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.message[:60]}"
