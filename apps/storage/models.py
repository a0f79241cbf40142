"""Storage as /cluster/resources reports it, and the content lists of each storage.

One `Storage` row per node for local storage (each node has its own `local`), one row for
shared storage (node = NULL): the same data seen from every node is stored once.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.urls import reverse

from apps.core.models import TimeStampedModel

from .choices import ContentType, StorageStatus


class Storage(TimeStampedModel):
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="storages")
    storage = models.CharField("storage id", max_length=100)
    # NULL for shared storage; the node owning this local storage otherwise.
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="storages")
    type = models.CharField(max_length=32)  # plugintype: dir, nfs, rbd, zfspool, lvmthin, ...
    content = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    shared = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=StorageStatus.choices, default=StorageStatus.UNKNOWN)
    disk = models.BigIntegerField(default=0)  # bytes used
    maxdisk = models.BigIntegerField(default=0)  # bytes total
    # Node names that report this storage (one for local storage, every enabled node for shared).
    nodes = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    content_synced_at = models.DateTimeField(null=True, blank=True)
    content_error = models.TextField(blank=True)

    class Meta:
        ordering = ["cluster", "storage", "node__name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "storage"], condition=Q(node__isnull=True),
                                    name="storage_shared_unique"),
            models.UniqueConstraint(fields=["cluster", "storage", "node"], condition=Q(node__isnull=False),
                                    name="storage_local_unique"),
        ]

    def __str__(self) -> str:
        return self.storage if self.node_id is None else f"{self.storage} ({self.node.name})"

    def get_absolute_url(self) -> str:
        return reverse("storage:storage", kwargs={"pk": self.pk})

    @property
    def usage_percent(self) -> float:
        return round(100.0 * self.disk / self.maxdisk, 1) if self.maxdisk else 0.0

    @property
    def node_name(self) -> str | None:
        """Node to ask for this storage's content: its own node, or the first reporting one."""
        if self.node_id is not None:
            return self.node.name
        return self.nodes[0] if self.nodes else None

    def holds(self, content: str) -> bool:
        return content in (self.content or [])


class StorageContent(models.Model):
    """One volume as `GET /nodes/{node}/storage/{storage}/content` lists it."""

    storage = models.ForeignKey(Storage, on_delete=models.CASCADE, related_name="contents")
    volid = models.CharField(max_length=500)
    content = models.CharField(max_length=16, choices=ContentType.choices, db_index=True)
    size = models.BigIntegerField(default=0)
    format = models.CharField(max_length=32, blank=True)
    vmid = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    ctime = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    protected = models.BooleanField(default=False)

    class Meta:
        ordering = ["storage", "content", "volid"]
        verbose_name_plural = "storage content"
        constraints = [models.UniqueConstraint(fields=["storage", "volid"], name="storage_content_unique")]
        # The API list's default order (volid, id): a page of 10,000 volumes read from the index, not sorted.
        indexes = [models.Index(fields=["volid", "id"], name="storagecontent_volid_id_idx")]

    def __str__(self) -> str:
        return self.volid

    @property
    def filename(self) -> str:
        """`local:iso/debian.iso` -> `debian.iso`."""
        return self.volid.split(":", 1)[-1].rsplit("/", 1)[-1]
