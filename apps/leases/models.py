"""Lease: a guest's expiry. Owners are warned before it, may extend it within their tenant's limit;
at expiry the guest is stopped, after the tenant's grace period deleted, each an Operation."""

from django.db import models
from django.urls import reverse


class Lease(models.Model):
    guest = models.OneToOneField("guests.Guest", on_delete=models.CASCADE, related_name="lease")
    expires_at = models.DateTimeField(db_index=True)
    # The sweep's marks: when it warned, queued the stop, queued the delete (so each happens once).
    warned_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_operation_id = models.UUIDField(null=True, blank=True)
    delete_operation_id = models.UUIDField(null=True, blank=True)
    extensions = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["expires_at"]

    def __str__(self) -> str:
        return f"{self.guest} until {self.expires_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        return reverse("guests:guest", kwargs={"pk": self.guest_id})
