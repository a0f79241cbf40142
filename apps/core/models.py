from django.conf import settings
from django.db import models

from .fields import EncryptedTextField  # noqa: F401  (re-exported for apps: core.models.EncryptedTextField)


class TimeStampedModel(models.Model):
    """Abstract base: `created` and `updated` set by the database save path."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class AuditResult(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"
    ACCEPTED = "accepted", "Accepted"  # queued as an operation; its own row records the outcome


class AuditEntry(models.Model):
    """Who did what to which object, when, from where, with what result. Append-only."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    # The API token the request carried ("<name> (<key>…)"), blank for a session: who is the token.
    token = models.CharField(max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=100, db_index=True)  # "<app>.<entity>_<action>"
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    result = models.CharField(max_length=20, choices=AuditResult.choices)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # permissions.Tenant's id, not a foreign key (core sits below permissions): the tenant whose
    # object this was, else the acting user's active tenant. Tenant admins see their tenant's entries.
    tenant_id = models.PositiveIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def get_absolute_url(self):
        from django.urls import reverse

        return reverse("core:auditentry", args=[self.pk])

    def __str__(self):
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.result}"

    @property
    def action_display(self) -> str:
        """`nodes.cluster_create` -> "Cluster create" (the app prefix says nothing to a person)."""
        name = self.action.split(".", 1)[-1].replace("_", " ")
        return name[:1].upper() + name[1:]
