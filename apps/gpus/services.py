"""Writes for the GPU inventory: the refresh, its sync hook and the on-demand request.

Cost on Proxmox per refresh of a cluster (never per sync cycle, never per viewer):
one `GET /nodes/{node}/hardware/pci` per online node, one `GET .../hardware/pci/{id}/mdev` per
mdev-capable GPU, one `GET /cluster/mapping/pci`. It runs right after a cluster's first sync (and
when a node comes back), every GPU_INVENTORY_INTERVAL seconds while someone looks (a page of the
cluster or the GPU map open; never for nobody), and on demand.
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
from apps.core.rows import sync_rows
from apps.nodes import presence
from apps.nodes.choices import NodeStatus
from apps.nodes.models import Cluster, Node
from apps.proxmox import ProxmoxError, borrowed
from apps.proxmox import hardware as pve_hardware

from .choices import DISPLAY_CLASS_PREFIX
from .models import GpuDevice, GpuInventory, MdevType, PciMapping

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 300
# The sync hook queues at most one refresh per cluster within this many seconds.
QUEUED_TTL = 120
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
            items = pve_hardware.pci_devices(client, node.name)
        except ProxmoxError as exc:  # the node's rows are kept, marked stale
            result.errors.append(f"{node.name}: {exc}")
            continue
        answered[node.name] = [i for i in items if is_display_class(i.get("class", ""))]
    mdevs: dict[tuple[str, str], list[dict]] = {}
    for node_name, items in answered.items():
        for item in items:
            if not pve_hardware.mdev_capable(item):
                continue
            _count(result.calls, "GET /nodes/{node}/hardware/pci/{id}/mdev")
            try:
                mdevs[(node_name, item["id"])] = pve_hardware.mdev_types(client, node_name, item["id"])
            except ProxmoxError as exc:  # the device's profiles are kept as they were
                result.errors.append(f"{node_name} {item['id']} mdev: {exc}")
    _count(result.calls, "GET /cluster/mapping/pci")
    try:
        mappings = pve_hardware.pci_mappings(client)
    except ProxmoxError as exc:
        result.errors.append(f"mappings: {exc}")
        mappings = None
    return answered, mdevs, mappings


def _read_configs(guests: list, client, result: RefreshResult) -> None:
    """Details of guests on GPU nodes whose config the portal never read (guests.guest_refresh, once
    per guest: afterwards it is known), so GPUs given outside the portal are adopted, not handed out."""
    from apps.guests.services import guest_refresh

    for guest in guests:
        _count(result.calls, "guest details (config) of a guest on a GPU node, once")
        try:
            guest_refresh(guest=guest, client=client)
        except ProxmoxError as exc:
            result.errors.append(f"config of {guest.vmid}: {exc}")


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
    with presence.locked("gpus", cluster.pk, LOCK_TIMEOUT) as held:
        if not held:
            result.skipped = True
            return result
        from apps.nodes.services import cluster_client

        nodes = list(Node.objects.filter(cluster=cluster).order_by("name"))
        from .attach import allocations_adopt, configs_unknown

        with borrowed(client, lambda: cluster_client(cluster)) as client:
            answered, mdevs, mappings = _fetch(cluster, nodes, client, result)
            _read_configs(configs_unknown(cluster), client, result)
        with transaction.atomic():
            _write(cluster, nodes, answered, mdevs, mappings, result)
        result.changed["allocations_adopted"] = allocations_adopt(cluster)
        if result.total_changes and presence.watcher_count(live_group(cluster.pk)):
            push_gpu_map(cluster)
        return result


def _write(cluster, nodes, answered, mdevs, mappings, result: RefreshResult) -> None:
    now = timezone.now()
    inventory, _ = GpuInventory.objects.select_for_update().get_or_create(cluster=cluster)
    node_ids = {n.name: n.pk for n in nodes}
    existing = {(d.node_id, d.pci_id): d for d in GpuDevice.objects.filter(cluster=cluster)}
    answered_ids = {node_ids[name] for name in answered}
    wanted = {(node_ids[name], i["id"]): _device_fields(i) for name, items in answered.items() for i in items}
    # Only nodes that answered can lose a device; the others' rows are kept, marked stale below.
    rows = sync_rows(GpuDevice, {k: d for k, d in existing.items() if k[0] in answered_ids}, wanted,
                     build=lambda key, fields: GpuDevice(cluster=cluster, node_id=key[0], pci_id=key[1],
                                                         last_seen=now, **fields),
                     stamp={"last_seen": now, "updated": now})
    staled = []
    for (node_id, _), row in existing.items():
        if node_id not in answered_ids and not row.stale:  # offline or not answering: keep the row as last seen
            row.stale, row.updated = True, now
            row.last_seen = inventory.refreshed_at or row.last_seen
            staled.append(row)
    if staled:
        GpuDevice.objects.bulk_update(staled, ["stale", "last_seen", "updated"])
    result.changed.update(devices_created=len(rows.created), devices_updated=len(rows.updated),
                          devices_deleted=len(rows.deleted), devices_stale=len(staled))

    devices = {(d.node_id, d.pci_id): d for d in GpuDevice.objects.filter(cluster=cluster)}
    _write_mdev_types(devices, node_ids, mdevs, result)
    if mappings is not None:
        _write_mappings(cluster, devices, node_ids, mappings, result, now)

    error = "; ".join(result.errors)[:2000]
    GpuInventory.objects.filter(pk=inventory.pk).update(refreshed_at=now, nodes_seen=sorted(answered), error=error)


def _write_mdev_types(devices, node_ids, mdevs, result: RefreshResult) -> None:
    """Profiles of the devices whose mdev list was read; others keep theirs."""
    by_device = {devices[(node_ids[n], pci)].pk: items for (n, pci), items in mdevs.items()
                 if (node_ids[n], pci) in devices}
    existing = {(m.device_id, m.type): m for m in MdevType.objects.filter(device_id__in=by_device)}
    wanted = {(device_id, i["type"]): _mdev_fields(i) for device_id, items in by_device.items()
              for i in items if i.get("type")}
    rows = sync_rows(MdevType, existing, wanted,
                     build=lambda key, fields: MdevType(device_id=key[0], type=key[1], **fields))
    # Devices that lost their mdev capability lose their profiles.
    plain = [d.pk for d in devices.values() if not d.mdev_capable and not d.stale]
    lost = list(MdevType.objects.filter(device_id__in=plain).values_list("pk", flat=True))
    if lost:
        MdevType.objects.filter(pk__in=lost).delete()
    result.changed.update(mdev_created=len(rows.created), mdev_updated=len(rows.updated),
                          mdev_deleted=len(rows.deleted) + len(lost))


def _write_mappings(cluster, devices, node_ids, mappings, result: RefreshResult, now) -> None:
    existing = {m.mapping_id: m for m in PciMapping.objects.filter(cluster=cluster)}
    links: dict[int, set[int]] = {}
    for pk, device_pk in PciMapping.devices.through.objects.filter(
            pcimapping__cluster=cluster).values_list("pcimapping_id", "gpudevice_id"):
        links.setdefault(pk, set()).add(device_pk)
    wanted = {item["id"]: _mapping_fields(item) for item in mappings if item.get("id")}
    targets = {mapping_id: _resolve(fields["map"], devices, node_ids) for mapping_id, fields in wanted.items()}
    rows = sync_rows(PciMapping, existing, wanted, stamp={"updated": now},
                     build=lambda mapping_id, fields: PciMapping(cluster=cluster, mapping_id=mapping_id, **fields))
    relink = [row for mapping_id, row in existing.items()
              if mapping_id in wanted and links.get(row.pk, set()) != targets[mapping_id]]
    for row in relink + [row for row in rows.created if targets[row.mapping_id]]:
        row.devices.set(targets[row.mapping_id])
    result.changed.update(mappings_created=len(rows.created), mappings_updated=len(rows.updated),
                          mappings_relinked=len(relink), mappings_deleted=len(rows.deleted))


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
    """Sync handler (apps.nodes.sync registry). Makes NO Proxmox call: it frees the GPUs of deleted
    guests and queues a refresh when
    the cluster was never inventoried, its inventory is older than the interval, or an online node
    was not seen by the last refresh (a node came back). Changes no inventory row itself."""
    from .attach import allocations_release_gone

    if allocations_release_gone(cluster):  # a deleted guest's GPU is free again
        transaction.on_commit(lambda: push_gpu_map(cluster))
    online = {n["node"] for n in snapshot.nodes if n.get("node") and n.get("status") == NodeStatus.ONLINE}
    row = GpuInventory.objects.filter(cluster=cluster).values_list("refreshed_at", "nodes_seen").first()
    refreshed_at, seen = row if row else (None, [])
    # Something changed (never inventoried, a node came back), or the inventory is old and someone
    # looks (a page of the cluster or the GPU map is open): nobody looking, no read for nobody.
    old = refreshed_at is not None and timezone.now() - refreshed_at > timedelta(seconds=refresh_interval())
    due = refreshed_at is None or bool(online - set(seen)) or (old and _watched(cluster.pk, snapshot))
    if due:
        cluster_id = cluster.pk
        transaction.on_commit(lambda: gpu_refresh_enqueue(cluster_id=cluster_id))
    return []


def _watched(cluster_id: int, snapshot=None) -> bool:
    """Someone has a page of the cluster (counted by the sync cycle) or the GPU map open."""
    if getattr(snapshot, "watchers", 0):
        return True
    counts = presence.watcher_counts([f"cluster-{cluster_id}", live_group(cluster_id)])
    return any(counts.values())


def gpu_refresh_enqueue(*, cluster_id: int, force: bool = False, user=None) -> bool:
    """Queue one `gpus.gpu_inventory_refresh`; without `force`, at most one per QUEUED_TTL seconds
    per cluster (the sync hook runs every few seconds). True when queued. A `user`'s request is
    the policy's `gpu.refresh` (operators): 404 for an unseen cluster, 403 (audited) otherwise."""
    if user is not None:
        from apps.permissions.policy import check

        check(user, "gpu.refresh", Cluster.objects.get(pk=cluster_id))
    if not force and not presence.mark_queued("gpus", cluster_id, QUEUED_TTL):
        return False
    from .tasks import gpu_inventory_refresh

    gpu_inventory_refresh.delay(cluster_id)
    return True


def gpu_inventory_refresh_all() -> int:
    """Queue a refresh of every cluster someone looks at (a page of it or the GPU map open: none
    for nobody); returns how many."""
    ids = [pk for pk in Cluster.objects.values_list("pk", flat=True) if _watched(pk)]
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
