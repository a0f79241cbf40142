"""Writes for the GPU inventory: the refresh, its sync hook and the on-demand request.

Cost on Proxmox per refresh of a cluster (never per sync cycle, never per viewer):
one `GET /nodes/{node}/hardware/pci` per online node, one `GET .../hardware/pci/{id}/mdev` per
mdev-capable GPU, one `GET /cluster/mapping/pci`. It runs from beat every
GPU_INVENTORY_INTERVAL seconds, right after a cluster's first sync (and when a node comes back),
and on demand.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core import live
from apps.nodes import presence
from apps.nodes.choices import NodeStatus
from apps.nodes.models import Cluster, Node
from apps.proxmox import ProxmoxError

from .choices import DISPLAY_CLASS_PREFIX
from .models import GpuDevice, GpuInventory, MdevType, PciMapping

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 300
# The sync hook queues at most one refresh per cluster within this many seconds.
QUEUED_TTL = 120
_DEVICE_FIELDS = ["vendor_id", "device_id", "vendor_name", "device_name", "subsystem_vendor_id",
                  "subsystem_device_id", "subsystem_vendor_name", "subsystem_device_name", "pci_class",
                  "iommugroup", "mdev_capable", "stale"]
_MDEV_FIELDS = ["name", "description", "available", "max_instances"]
_MAPPING_FIELDS = ["description", "mdev", "live_migration_capable", "map"]
_MAX_INSTANCE_RE = re.compile(r"max_instance=(\d+)")


def refresh_interval() -> float:
    return float(getattr(settings, "GPU_INVENTORY_INTERVAL", 600))


@dataclass
class RefreshResult:
    cluster_id: int
    skipped: bool = False  # another refresh of this cluster holds the lock
    calls: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # created/updated/deleted/stale counts
    errors: list[str] = field(default_factory=list)

    @property
    def total_changes(self) -> int:
        return sum(self.changed.values())


# -- parsing what Proxmox answers ----------------------------------------------------------------

def is_display_class(pci_class: str) -> bool:
    return (pci_class or "").lower().startswith(DISPLAY_CLASS_PREFIX)


def _device_fields(item: dict) -> dict:
    group = item.get("iommugroup")
    return {
        "vendor_id": item.get("vendor") or "", "device_id": item.get("device") or "",
        "vendor_name": item.get("vendor_name") or "", "device_name": item.get("device_name") or "",
        "subsystem_vendor_id": item.get("subsystem_vendor") or "",
        "subsystem_device_id": item.get("subsystem_device") or "",
        "subsystem_vendor_name": item.get("subsystem_vendor_name") or "",
        "subsystem_device_name": item.get("subsystem_device_name") or "",
        "pci_class": item.get("class") or "", "iommugroup": int(group) if group not in (None, "") else -1,
        "mdev_capable": bool(item.get("mdev")), "stale": False,
    }


def _mdev_fields(item: dict) -> dict:
    description = item.get("description") or ""
    match = _MAX_INSTANCE_RE.search(description)
    return {"name": item.get("name") or "", "description": description,
            "available": max(0, int(item.get("available") or 0)),
            "max_instances": int(match.group(1)) if match else None}


def parse_map_entry(text: str) -> dict:
    """`node=pve1,path=0000:41:00.0,id=10de:26b9` -> {"node": "pve1", "path": ..., "id": ...}."""
    entry = {}
    for part in (text or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            entry[key.strip()] = value.strip()
    return entry


def _mapping_fields(item: dict) -> dict:
    return {"description": item.get("description") or "", "mdev": bool(item.get("mdev")),
            "live_migration_capable": bool(item.get("live-migration-capable")),
            "map": [parse_map_entry(t) for t in item.get("map") or []]}


def _normalize_path(path: str) -> str:
    path = path.strip().lower()
    return path if path.count(":") == 2 else f"0000:{path}"


def _path_matches(path: str, pci_id: str) -> bool:
    """A mapping path without `.func` names every function of the slot."""
    path = _normalize_path(path)
    return pci_id == path if "." in path else pci_id.startswith(path + ".")


# -- the refresh ---------------------------------------------------------------------------------

def _count(calls: dict, key: str) -> None:
    calls[key] = calls.get(key, 0) + 1


def _fetch(cluster: Cluster, nodes: list[Node], client, result: RefreshResult):
    """All Proxmox reads of one refresh, outside any database transaction.

    Returns ({node name: [display devices]} for nodes that answered, {(node, pci id): mdev list},
    mapping list or None when it could not be read)."""
    answered: dict[str, list[dict]] = {}
    for node in nodes:
        if node.status != NodeStatus.ONLINE:
            continue
        _count(result.calls, "GET /nodes/{node}/hardware/pci")
        try:
            items = client.get(f"nodes/{node.name}/hardware/pci") or []
        except ProxmoxError as exc:  # the node's rows are kept, marked stale
            result.errors.append(f"{node.name}: {exc}")
            continue
        answered[node.name] = [i for i in items if i.get("id") and is_display_class(i.get("class", ""))]
    mdevs: dict[tuple[str, str], list[dict]] = {}
    for node_name, items in answered.items():
        for item in items:
            if not item.get("mdev"):
                continue
            _count(result.calls, "GET /nodes/{node}/hardware/pci/{id}/mdev")
            try:
                mdevs[(node_name, item["id"])] = client.get(f"nodes/{node_name}/hardware/pci/{item['id']}/mdev") or []
            except ProxmoxError as exc:  # the device's profiles are kept as they were
                result.errors.append(f"{node_name} {item['id']} mdev: {exc}")
    _count(result.calls, "GET /cluster/mapping/pci")
    try:
        mappings = client.get("cluster/mapping/pci") or []
    except ProxmoxError as exc:
        result.errors.append(f"mappings: {exc}")
        mappings = None
    return answered, mdevs, mappings


def gpu_inventory_refresh(*, cluster: Cluster, client=None) -> RefreshResult:
    """Make the cluster's GpuDevice, MdevType and PciMapping rows match Proxmox.

    Guarantees: a bounded number of Proxmox calls (see the module docstring); never two refreshes
    of one cluster at once (Redis lock: the second returns `skipped`); only changed rows are
    written, in bulk, in one transaction (a refresh that finds nothing new writes only the
    inventory's timestamp); GPUs of nodes that are offline or do not answer are kept and marked
    stale, never deleted; a Proxmox error is recorded on the inventory row, not raised.
    Pushes the cluster's GPU map to `gpus-<cluster id>` when something changed and someone watches.
    """
    result = RefreshResult(cluster_id=cluster.pk)
    lock = presence.lock("gpus", cluster.pk, LOCK_TIMEOUT)
    if not lock.acquire():
        result.skipped = True
        return result
    try:
        nodes = list(Node.objects.filter(cluster=cluster).order_by("name"))
        own_client = client is None
        if own_client:
            from apps.nodes.services import cluster_client

            client = cluster_client(cluster)
        try:
            answered, mdevs, mappings = _fetch(cluster, nodes, client, result)
        finally:
            if own_client:
                client.close()
        with transaction.atomic():
            _write(cluster, nodes, answered, mdevs, mappings, result)
        if result.total_changes and presence.watcher_count(live_group(cluster.pk)):
            push_gpu_map(cluster)
        return result
    finally:
        try:
            lock.release()
        except Exception:  # expired while we ran: nothing to release
            pass


def _write(cluster, nodes, answered, mdevs, mappings, result: RefreshResult) -> None:
    now = timezone.now()
    inventory, _ = GpuInventory.objects.select_for_update().get_or_create(cluster=cluster)
    node_ids = {n.name: n.pk for n in nodes}
    existing = {(d.node_id, d.pci_id): d for d in GpuDevice.objects.filter(cluster=cluster)}
    created, updated, gone, staled = [], [], [], []
    answered_ids = {node_ids[name] for name in answered}
    for node_name, items in answered.items():
        node_id = node_ids[node_name]
        wanted = {i["id"]: _device_fields(i) for i in items}
        for pci_id, fields in wanted.items():
            row = existing.get((node_id, pci_id))
            if row is None:
                created.append(GpuDevice(cluster=cluster, node_id=node_id, pci_id=pci_id, last_seen=now, **fields))
            elif any(getattr(row, f) != v for f, v in fields.items()):
                for f, v in fields.items():
                    setattr(row, f, v)
                row.last_seen, row.updated = now, now
                updated.append(row)
    for (node_id, pci_id), row in existing.items():
        if node_id in answered_ids:
            if pci_id not in {i["id"] for i in answered[_name_of(node_ids, node_id)]}:
                gone.append(row.pk)
        elif not row.stale:  # offline or not answering: keep the row as last seen
            row.stale, row.updated = True, now
            row.last_seen = inventory.refreshed_at or row.last_seen
            staled.append(row)
    if created:
        GpuDevice.objects.bulk_create(created)
    if updated:
        GpuDevice.objects.bulk_update(updated, _DEVICE_FIELDS + ["last_seen", "updated"])
    if staled:
        GpuDevice.objects.bulk_update(staled, ["stale", "last_seen", "updated"])
    if gone:
        GpuDevice.objects.filter(pk__in=gone).delete()
    result.changed.update(devices_created=len(created), devices_updated=len(updated),
                          devices_deleted=len(gone), devices_stale=len(staled))

    devices = {(d.node_id, d.pci_id): d for d in GpuDevice.objects.filter(cluster=cluster)}
    _write_mdev_types(devices, node_ids, mdevs, result)
    if mappings is not None:
        _write_mappings(cluster, devices, node_ids, mappings, result, now)

    error = "; ".join(result.errors)[:2000]
    GpuInventory.objects.filter(pk=inventory.pk).update(refreshed_at=now, nodes_seen=sorted(answered), error=error)


def _name_of(node_ids: dict[str, int], node_id: int) -> str:
    return next(name for name, pk in node_ids.items() if pk == node_id)


def _write_mdev_types(devices, node_ids, mdevs, result: RefreshResult) -> None:
    """Profiles of the devices whose mdev list was read; others keep theirs."""
    by_device = {devices[(node_ids[n], pci)].pk: items for (n, pci), items in mdevs.items()
                 if (node_ids[n], pci) in devices}
    existing = {(m.device_id, m.type): m for m in MdevType.objects.filter(device_id__in=by_device)}
    created, updated, gone = [], [], []
    for device_id, items in by_device.items():
        wanted = {i["type"]: _mdev_fields(i) for i in items if i.get("type")}
        for mdev_type, fields in wanted.items():
            row = existing.get((device_id, mdev_type))
            if row is None:
                created.append(MdevType(device_id=device_id, type=mdev_type, **fields))
            elif any(getattr(row, f) != v for f, v in fields.items()):
                for f, v in fields.items():
                    setattr(row, f, v)
                updated.append(row)
        gone += [row.pk for (dev, t), row in existing.items() if dev == device_id and t not in wanted]
    # Devices that lost their mdev capability lose their profiles.
    plain = [d.pk for d in devices.values() if not d.mdev_capable and not d.stale]
    gone += list(MdevType.objects.filter(device_id__in=plain).values_list("pk", flat=True))
    if created:
        MdevType.objects.bulk_create(created)
    if updated:
        MdevType.objects.bulk_update(updated, _MDEV_FIELDS)
    if gone:
        MdevType.objects.filter(pk__in=gone).delete()
    result.changed.update(mdev_created=len(created), mdev_updated=len(updated), mdev_deleted=len(gone))


def _write_mappings(cluster, devices, node_ids, mappings, result: RefreshResult, now) -> None:
    existing = {m.mapping_id: m for m in PciMapping.objects.filter(cluster=cluster)}
    links: dict[int, set[int]] = {}
    for pk, device_pk in PciMapping.devices.through.objects.filter(
            pcimapping__cluster=cluster).values_list("pcimapping_id", "gpudevice_id"):
        links.setdefault(pk, set()).add(device_pk)
    created, updated, relink = [], [], []
    wanted_ids = set()
    for item in mappings:
        mapping_id = item.get("id")
        if not mapping_id:
            continue
        wanted_ids.add(mapping_id)
        fields = _mapping_fields(item)
        targets = _resolve(fields["map"], devices, node_ids)
        row = existing.get(mapping_id)
        if row is None:
            row = PciMapping(cluster=cluster, mapping_id=mapping_id, **fields)
            created.append((row, targets))
            continue
        if any(getattr(row, f) != v for f, v in fields.items()):
            for f, v in fields.items():
                setattr(row, f, v)
            row.updated = now
            updated.append(row)
        if links.get(row.pk, set()) != targets:
            relink.append((row, targets))
    gone = [row.pk for mid, row in existing.items() if mid not in wanted_ids]
    if created:
        PciMapping.objects.bulk_create([row for row, _ in created])
        relink += [(row, targets) for row, targets in created if targets]
    if updated:
        PciMapping.objects.bulk_update(updated, _MAPPING_FIELDS + ["updated"])
    for row, targets in relink:
        row.devices.set(targets)
    if gone:
        PciMapping.objects.filter(pk__in=gone).delete()
    result.changed.update(mappings_created=len(created), mappings_updated=len(updated),
                          mappings_relinked=len([r for r in relink if r[0].pk not in {c.pk for c, _ in created}]),
                          mappings_deleted=len(gone))


def _resolve(entries: list[dict], devices, node_ids) -> set[int]:
    """Device pks the map entries name (node + path, alternatives `a;b` each count)."""
    targets = set()
    for entry in entries:
        node_id = node_ids.get(entry.get("node", ""))
        if node_id is None:
            continue
        for path in (entry.get("path") or "").split(";"):
            if path:
                targets.update(d.pk for (n, pci), d in devices.items() if n == node_id and _path_matches(path, pci))
    return targets


# -- triggers ------------------------------------------------------------------------------------

def gpu_sync_handler(cluster: Cluster, snapshot) -> list:
    """Sync handler (apps.nodes.sync registry). Makes NO Proxmox call: it queues a refresh when
    the cluster was never inventoried, its inventory is older than the interval, or an online node
    was not seen by the last refresh (a node came back). Changes nothing itself."""
    online = {n["node"] for n in snapshot.nodes if n.get("node") and n.get("status") == NodeStatus.ONLINE}
    row = GpuInventory.objects.filter(cluster=cluster).values_list("refreshed_at", "nodes_seen").first()
    refreshed_at, seen = row if row else (None, [])
    due = (refreshed_at is None or timezone.now() - refreshed_at > timedelta(seconds=refresh_interval())
           or bool(online - set(seen)))
    if due:
        cluster_id = cluster.pk
        transaction.on_commit(lambda: gpu_refresh_enqueue(cluster_id=cluster_id))
    return []


def gpu_refresh_enqueue(*, cluster_id: int, force: bool = False) -> bool:
    """Queue one `gpus.gpu_inventory_refresh`; without `force`, at most one per QUEUED_TTL seconds
    per cluster (the sync hook runs every few seconds). True when queued."""
    if not force and not presence.mark_queued("gpus", cluster_id, QUEUED_TTL):
        return False
    from .tasks import gpu_inventory_refresh

    gpu_inventory_refresh.delay(cluster_id)
    return True


def gpu_inventory_refresh_all() -> int:
    """Queue a refresh of every cluster; returns how many."""
    ids = list(Cluster.objects.values_list("pk", flat=True))
    for pk in ids:
        gpu_refresh_enqueue(cluster_id=pk, force=True)
    return len(ids)


# -- pushing -------------------------------------------------------------------------------------

def live_group(cluster_id: int) -> str:
    return f"gpus-{cluster_id}"


def push_gpu_map(cluster: Cluster) -> None:
    """Send the cluster's GPU map (same partial as the page, hx-swap-oob) to `gpus-<cluster id>`."""
    from .selectors import gpu_map_for_cluster

    try:
        html = render_to_string("gpus/partials/gpu_map_cluster.html",
                                {"entry": gpu_map_for_cluster(cluster=cluster), "oob": True})
    except Exception:
        logger.exception("rendering the GPU map of cluster %s failed", cluster.pk)
        return
    live.push(live_group(cluster.pk), html=html, data={"type": "gpus", "cluster": cluster.pk})
