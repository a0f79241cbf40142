"""Reads, always scoped to what `user` may see (operators: everything; others: nothing until
tenancy lands; apps.core.scoping decides). One selector per model."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.scoping import scope_queryset

from .models import Guest, Snapshot


def guest_list(*, user) -> QuerySet[Guest]:
    # The list never needs the JSON blobs (the detail page reads them with guest_get), nor the
    # cluster's token: decrypting it per row cost more than serialising the row.
    return scope_queryset(Guest.objects.select_related("cluster", "node")
                          .defer("config", "task_history", "cluster__token_secret"), user)


def guest_get(*, user, pk) -> Guest | None:
    """The guest with its details if `user` may see it, else None (callers answer 404)."""
    try:
        return scope_queryset(Guest.objects.select_related("cluster", "node"), user).filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def snapshot_list(*, user) -> QuerySet[Snapshot]:
    return scope_queryset(Snapshot.objects.select_related("guest"), user)


def guest_backups(*, user, guest: Guest):
    """Backups of `guest`: StorageContent rows (content=backup) with its vmid in its cluster."""
    from apps.storage.selectors import storage_content_list

    return storage_content_list(user=user).filter(content="backup", vmid=guest.vmid,
                                                  storage__cluster_id=guest.cluster_id).order_by("-ctime")
