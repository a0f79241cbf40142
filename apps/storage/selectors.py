"""Reads, always scoped to what `user` may see (operators: everything; others: nothing until
tenancy lands; apps.core.scoping decides)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.scoping import scope_queryset

from .models import Storage, StorageContent


def storage_list(*, user) -> QuerySet[Storage]:
    return scope_queryset(Storage.objects.select_related("cluster", "node"), user)


def storage_content_list(*, user) -> QuerySet[StorageContent]:
    # The cluster's token is decrypted only by what calls Proxmox, never per listed row.
    return scope_queryset(StorageContent.objects.select_related("storage", "storage__cluster", "storage__node")
                          .defer("storage__cluster__token_secret"), user)
