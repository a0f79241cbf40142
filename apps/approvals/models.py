"""ApprovalRequest: a tenant's request that is above one of its tenant's approval sizes and waits
for an operator. What it needs is held from the moment it is made: the quota reservation (and, for
a create, the vmid) are taken under the request's id, moved to the operation approval starts, and
released when an operator declines or the requester withdraws."""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.core.fields import EncryptedTextField

from .choices import ApprovalStatus


class ApprovalRequest(models.Model):
    # Also the id the reservations are held under until an operation takes them over.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("permissions.Tenant", on_delete=models.CASCADE, related_name="approval_requests")
    kind = models.CharField(max_length=64)  # the operation kind approval starts, e.g. "guest.create"
    title = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)  # what the runner needs; never secrets
    secret = EncryptedTextField(null=True, blank=True)  # a CT root password, until the operation has it
    amounts = models.JSONField(default=dict, blank=True)  # {quota resource: amount} held for it
    above = models.JSONField(default=list, blank=True)  # which approval sizes it is above, in words
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.WAITING,
                              db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="approval_requests")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)  # the operator's (or the requester's, withdrawing)
    operation_id = models.UUIDField(null=True, blank=True)  # what approval started
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title

    @property
    def target_repr(self) -> str:
        return self.title

    @property
    def is_waiting(self) -> bool:
        return self.status == ApprovalStatus.WAITING

    def get_absolute_url(self) -> str:
        return reverse("approvals:approval", kwargs={"pk": self.pk})
