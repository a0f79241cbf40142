"""Make a table match what an outside system reports: diff, then bulk create/update/delete.

Every inventory (nodes, guests, storage, storage content, GPUs, mdev types, PCI mappings) does the
same thing with its own rows; `sync_rows` is that loop, written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Mapping

from django.db import models


@dataclass
class RowChanges:
    created: list = field(default_factory=list)
    updated: list = field(default_factory=list)
    deleted: list = field(default_factory=list)
    fields: set[str] = field(default_factory=set)  # the fields written on updated rows

    @property
    def changed(self) -> list:
        """Created and updated rows (what gets pushed to open pages)."""
        return self.created + self.updated

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def differing(row: models.Model, want: Mapping) -> list[str]:
    """The fields of `want` whose value differs on `row` (the default comparison)."""
    return [name for name, value in want.items() if getattr(row, name) != value]


def sync_rows(model: type[models.Model], existing: Mapping[Hashable, models.Model], wanted: Mapping[Hashable, dict], *,
              build: Callable[[Hashable, dict], models.Model | None],
              changes: Callable[[models.Model, dict], Iterable[str]] = differing,
              stamp: Mapping | None = None, delete: bool = True) -> RowChanges:
    """Make `existing` rows (by key) match `wanted` values (by key), in bulk.

    A wanted key without a row gets `build(key, values)` (None skips it for now); a row whose
    `changes(row, values)` names fields gets those fields (plus `stamp`, e.g. updated=now) set and is
    bulk-updated with only the fields that changed; with `delete`, rows whose key is not wanted are
    deleted. Three statements at most; a run that finds nothing different writes nothing.
    Runs in the caller's transaction."""
    result = RowChanges()
    for key, want in wanted.items():
        row = existing.get(key)
        if row is None:
            new = build(key, want)
            if new is not None:
                result.created.append(new)
            continue
        changed = list(changes(row, want))
        if changed:
            for name in changed:
                setattr(row, name, want[name])
            for name, value in (stamp or {}).items():
                setattr(row, name, value)
            result.updated.append(row)
            result.fields.update(changed)
    if delete:
        result.deleted = [row for key, row in existing.items() if key not in wanted]
    if result.created:
        model.objects.bulk_create(result.created)
    if result.updated:
        model.objects.bulk_update(result.updated, sorted(result.fields | set(stamp or ())))
    if result.deleted:
        model.objects.filter(pk__in=[row.pk for row in result.deleted]).delete()
    return result
