"""Tenants, their members, pools, quotas and reservations, and API tokens.

A tenant owns one Proxmox pool per cluster it uses; guests found in that pool belong to it.
Operators are active staff users; auditors are members of the "Auditors" group (read-only,
everything). Usage of a quota is what exists plus what operations in flight have reserved.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from knox.models import AbstractAuthToken

from apps.core.models import TimeStampedModel

from .choices import QuotaRequestState, QuotaResource, ReservationState, TenantRole

AUDITORS_GROUP = "Auditors"


class Tenant(TimeStampedModel):
    name = models.CharField(max_length=100, unique=True)
    # Prefix of what the tenant owns on Proxmox's flat namespaces (pools, IP sets, groups).
    slug = models.SlugField(max_length=32, unique=True,
                            validators=[RegexValidator(r"^[a-z][a-z0-9-]*$", "lower-case letters, digits and dashes")])
    description = models.TextField(blank=True)
    # Leases: a new guest expires after lease_days (None: never); owners may extend by up to
    # lease_max_extension_days at a time; expired guests are stopped, deleted after the grace.
    lease_days = models.PositiveIntegerField(null=True, blank=True)
    lease_max_extension_days = models.PositiveIntegerField(null=True, blank=True)
    lease_grace_days = models.PositiveIntegerField(default=7)
    # Approval: a request above any of these waits for an operator (None: no approval needed).
    approval_above_vcpus = models.PositiveIntegerField(null=True, blank=True)
    approval_above_memory = models.BigIntegerField(null=True, blank=True)
    approval_above_disk = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TenantPool(models.Model):
    """The tenant's Proxmox pool on one cluster (created by the portal when missing)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="pools")
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="tenant_pools")
    pool = models.CharField(max_length=100)

    class Meta:
        ordering = ["tenant", "cluster", "pool"]
        constraints = [models.UniqueConstraint(fields=["cluster", "pool"], name="tenant_pool_unique")]

    def __str__(self) -> str:
        return f"{self.pool} ({self.tenant})"


class Membership(TimeStampedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=TenantRole.choices, default=TenantRole.MEMBER)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.get_role_display()})"


class Quota(models.Model):
    """A tenant's limit of one resource; no row (or limit None) means unlimited."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quotas")
    resource = models.CharField(max_length=64)  # a QuotaResource value or "gpu:<profile id>"
    limit = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["tenant", "resource"]
        constraints = [models.UniqueConstraint(fields=["tenant", "resource"], name="quota_unique")]

    def __str__(self) -> str:
        label = dict(QuotaResource.choices).get(self.resource, self.resource)
        return f"{self.tenant}: {label} ≤ {self.limit if self.limit is not None else '∞'}"


class Reservation(models.Model):
    """Capacity an operation holds from a tenant's quota while it runs (see module docstring)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reservations")
    operation_id = models.UUIDField(db_index=True)
    resource = models.CharField(max_length=64)
    amount = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=ReservationState.choices, default=ReservationState.RESERVED,
                             db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["tenant", "resource", "state"])]

    def __str__(self) -> str:
        return f"{self.resource} {self.amount} for {self.operation_id} ({self.state})"


class QuotaRequest(TimeStampedModel):
    """A tenant admin asks for new limits, with a reason; an operator approves (the limits are
    applied) or declines (with a reason)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quota_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    limits = models.JSONField(default=dict)  # {resource: new limit (None: unlimited)}, as quota_set takes
    reason = models.TextField()
    state = models.CharField(max_length=16, choices=QuotaRequestState.choices, default=QuotaRequestState.PENDING,
                             db_index=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"quota request #{self.pk} of {self.tenant}"


class TenantFile(models.Model):
    """A file a tenant's user stored on a storage (upload or download from a URL): it uses the
    tenant's disk quota, at the size the storage's content list gives, for as long as it is listed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="files")
    storage_id = models.PositiveIntegerField()  # storage.Storage's id (the storage app sits above this one)
    volid = models.CharField(max_length=300)
    operation_id = models.UUIDField(null=True, blank=True)  # the upload or download that stored it
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "volid"]
        constraints = [models.UniqueConstraint(fields=["storage_id", "volid"], name="tenant_file_unique")]

    def __str__(self) -> str:
        return f"{self.volid} ({self.tenant})"


class ApiToken(AbstractAuthToken):
    """A REST client's token (django-rest-knox: only a hash is stored, shown once at creation).

    Bound to one tenant (None only for operators' and auditors' tokens), optionally read-only."""

    name = models.CharField(max_length=100)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens")
    read_only = models.BooleanField(default=False)
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…)"

    def still_valid(self) -> bool:
        """Not revoked (still stored) and not expired: long-lived websockets ask when re-checked."""
        from django.utils import timezone

        if self.expiry is not None and self.expiry <= timezone.now():
            return False
        return type(self).objects.filter(digest=self.digest).exists()
