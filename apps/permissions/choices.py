from django.db import models


class TenantRole(models.TextChoices):
    ADMIN = "admin", "Tenant admin"  # the tenant's members, tokens, quota view, guests
    MEMBER = "member", "Tenant member"  # the tenant's guests


class QuotaResource(models.TextChoices):
    """What a tenant spends. GPU quotas are per profile: resource "gpu:<profile id>"."""

    VCPUS = "vcpus", "vCPUs"
    MEMORY = "memory", "Memory"  # bytes
    DISK = "disk", "Disk"  # bytes
    GUESTS = "guests", "Guests"
    SNAPSHOTS_PER_GUEST = "snapshots_per_guest", "Snapshots per guest"
    BACKUPS = "backups", "Backups"


class ReservationState(models.TextChoices):
    RESERVED = "reserved", "Reserved"  # an operation in flight holds it
    COMMITTED = "committed", "Committed"  # the operation succeeded: usage now counts what exists
    RELEASED = "released", "Released"  # the operation failed or was cancelled


class QuotaRequestState(models.TextChoices):
    PENDING = "pending", "Waiting for an operator"
    APPROVED = "approved", "Approved"  # the limits asked for were applied
    DECLINED = "declined", "Declined"
