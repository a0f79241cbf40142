"""Writes for storage: the inventory sync handler, content refresh, upload and download-url.

Cost on Proxmox: storage rows come from the sync cycle's one `/cluster/resources` call (no
extra call). Content lists cost one `GET .../content` per storage that holds listable content,
made only by `storage_content_refresh`: a new storage, every CONTENT_INTERVAL seconds while someone
looks (a page of the cluster open: the sync handler queues it, never for nobody), the Refresh
button, and after an operation that changed the content; never in the sync cycle itself.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core import live
from apps.core.rows import sync_rows
from apps.operations.clients import client_for
from apps.operations.services import OperationReporter, follow_upid, operation_create
from apps.permissions.policy import as_actor, check
from apps.proxmox import ProxmoxError, borrowed
from apps.proxmox import storage as pve_storage
from apps.proxmox import tasklog

from . import transfer_quota
from .choices import LISTED_CONTENT, UPLOAD_CONTENT, ContentType, StorageStatus
from .models import Storage, StorageContent
from .public_url import check_public_url

logger = logging.getLogger(__name__)

# File name endings Proxmox accepts per content type (pve-storage: PVE/Storage.pm upload checks).
ALLOWED_EXTENSIONS = {
    ContentType.ISO: (".iso", ".img"),
    ContentType.VZTMPL: (".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2", ".tgz"),
    ContentType.IMPORT: (".ova", ".ovf", ".qcow2", ".raw", ".vmdk", ".img"),
}
_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# -- inventory sync ------------------------------------------------------------------------------


def _desired_storages(resources: list[dict]) -> dict[tuple[str, str | None], dict]:
    """Fold the per-node storage rows of /cluster/resources: shared storage once, local per node."""
    desired: dict[tuple[str, str | None], dict] = {}
    for row in resources:
        if row.get("type") != "storage" or not row.get("storage"):
            continue
        shared = bool(_int(row.get("shared")))
        key = (row["storage"], None if shared else row.get("node"))
        entry = desired.get(key)
        available = row.get("status") == StorageStatus.AVAILABLE
        if entry is None:
            entry = desired[key] = {
                "type": row.get("plugintype") or "", "shared": shared, "nodes": [],
                "content": sorted(c for c in (row.get("content") or "").split(",") if c),
                "status": StorageStatus.UNKNOWN, "disk": 0, "maxdisk": 0,
            }
        entry["nodes"].append(row.get("node") or "")
        if available and entry["status"] != StorageStatus.AVAILABLE:
            # Usage from a node that can see the storage (offline nodes report zeros).
            entry.update(status=StorageStatus.AVAILABLE, disk=_int(row.get("disk")),
                         maxdisk=_int(row.get("maxdisk")))
    for entry in desired.values():
        entry["nodes"] = sorted(set(entry["nodes"]))
    return desired


def storage_sync(cluster, snapshot) -> list[Storage]:
    """Sync handler (apps.nodes.sync registry): make the cluster's Storage rows match
    /cluster/resources. Writes only rows whose fields changed (bulk), deletes storages that are
    gone, queues a content refresh for new ones, pushes changed rows to `cluster-<id>`.
    Returns the created and updated rows. Idempotent: a second run with the same data writes nothing."""
    from apps.nodes import presence
    from apps.nodes.models import Node

    desired = _desired_storages(snapshot.storages)
    node_ids = dict(Node.objects.filter(cluster=cluster).values_list("name", "id"))
    existing = {(s.storage, s.node.name if s.node_id else None): s
                for s in Storage.objects.filter(cluster=cluster).select_related("node")}

    def build(key, fields):
        name, node_name = key
        if node_name is not None and node_name not in node_ids:
            return None  # the node row comes first (apps.nodes); next cycle will have it
        return Storage(cluster=cluster, storage=name, node_id=node_ids.get(node_name), **fields)

    with transaction.atomic():
        rows = sync_rows(Storage, existing, desired, build=build, stamp={"updated": timezone.now()})
    created, changed = rows.created, rows.changed
    if changed and presence.watcher_count(cluster.live_group):
        transaction.on_commit(lambda: _push_storages(cluster.pk, changed))
    listable = [s.pk for s in created if _listable(s)]
    if getattr(snapshot, "watchers", 0):  # someone looks: content lists older than the interval too
        stale = timezone.now() - timedelta(seconds=content_interval())
        listable += [s.pk for s in existing.values() if s not in rows.deleted and _listable(s)
                     and (s.content_synced_at is None or s.content_synced_at < stale)
                     and presence.mark_queued("storage-content", s.pk, CONTENT_QUEUED_TTL)]
    if listable:
        transaction.on_commit(lambda: _enqueue_refresh(listable))
    return changed


CONTENT_QUEUED_TTL = 120  # a stale storage's refresh is queued at most once in this many seconds


def content_interval() -> float:
    """Seconds a content list stays fresh while someone looks (STORAGE_CONTENT_REFRESH_INTERVAL)."""
    return float(getattr(settings, "STORAGE_CONTENT_REFRESH_INTERVAL", 600))


def _listable(storage: Storage) -> bool:
    return any(c in LISTED_CONTENT for c in storage.content or [])


def _enqueue_refresh(storage_ids: list[int]) -> None:
    from .tasks import storage_content_refresh

    for pk in storage_ids:
        storage_content_refresh.delay(pk)


def _push_storages(cluster_id: int, storages: list[Storage]) -> None:
    html = "".join(render_to_string("storage/partials/storage_usage.html", {"storage": s, "oob": True})
                   for s in storages)
    live.push(f"cluster-{cluster_id}", html=html,
              data={"type": "storage", "ids": [s.pk for s in storages]})


# -- content refresh -----------------------------------------------------------------------------


def _ctime(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=dt_timezone.utc) if value else None


def _content_fields(item: dict) -> dict:
    return {
        "content": item.get("content") or "",
        "size": _int(item.get("size")),
        "format": item.get("format") or "",
        "vmid": _int(item.get("vmid")) or None,
        "ctime": _ctime(item.get("ctime")),
        "notes": item.get("notes") or "",
        "protected": bool(_int(item.get("protected"))),
    }


def _fetch_content(storage: Storage, client) -> list[dict]:
    """Ask the storage's node (shared storage: each reporting node in turn until one answers)."""
    nodes = [storage.node.name] if storage.node_id else list(storage.nodes)
    return pve_storage.content_any_node(client, nodes, storage.storage)


def storage_content_refresh(*, storage: Storage, client=None) -> dict[str, int]:
    """Make StorageContent of `storage` match Proxmox's content list (one Proxmox call; none for
    storages that hold only disks). Bulk writes of what changed only. On a Proxmox error the
    rows are kept and the error is saved on the storage (shown on its page), then re-raised.
    Returns counts {created, updated, deleted}."""
    if not _listable(storage):
        return {"created": 0, "updated": 0, "deleted": 0}
    try:
        with borrowed(client, lambda: client_for(storage.cluster_id)) as client:
            items = _fetch_content(storage, client)
    except ProxmoxError as exc:
        Storage.objects.filter(pk=storage.pk).update(content_error=str(exc))
        raise
    wanted = {i["volid"]: _content_fields(i) for i in items
              if i.get("volid") and i.get("content") in LISTED_CONTENT}
    with transaction.atomic():
        # Two refreshes of one storage (beat, an action's re-read) take turns: the second diffs
        # against what the first wrote instead of inserting the same volids again.
        Storage.objects.select_for_update(of=("self",)).filter(pk=storage.pk).first()
        existing = {c.volid: c for c in StorageContent.objects.filter(storage=storage)}
        rows = sync_rows(StorageContent, existing, wanted,
                         build=lambda volid, fields: StorageContent(storage=storage, volid=volid, **fields))
        Storage.objects.filter(pk=storage.pk).update(content_synced_at=timezone.now(), content_error="")
    if rows:
        transaction.on_commit(lambda: _push_content_changed(storage))
    return {"created": len(rows.created), "updated": len(rows.updated), "deleted": len(rows.deleted)}


def _push_content_changed(storage: Storage) -> None:
    # A trigger, not the list: each page re-reads the content through its user's selector.
    html = render_to_string("storage/partials/storage_content_stale.html", {"storage": storage})
    live.push(f"storage-{storage.pk}", html=html, data={"type": "storage.content", "id": storage.pk})


def storage_content_refresh_all(*, cluster_id: int | None = None) -> int:
    """Queue one content refresh per storage holding listable content, of the clusters someone looks
    at (a page of the cluster open; none for nobody), or of `cluster_id`; returns how many."""
    from apps.nodes import presence

    queryset = Storage.objects.all()
    if cluster_id is not None:
        queryset = queryset.filter(cluster_id=cluster_id)
    else:
        clusters = set(queryset.values_list("cluster_id", flat=True))
        counts = presence.watcher_counts([f"cluster-{pk}" for pk in clusters])
        queryset = queryset.filter(cluster_id__in=[pk for pk in clusters if counts.get(f"cluster-{pk}")])
    ids = [s.pk for s in queryset.only("pk", "content") if _listable(s)]
    _enqueue_refresh(ids)
    return len(ids)


# -- upload and download-url ---------------------------------------------------------------------


def _validate_transfer(*, storage: Storage, content: str, filename: str, checksum: str,
                       checksum_algorithm: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if content not in UPLOAD_CONTENT:
        errors["content"] = [f"must be one of {', '.join(UPLOAD_CONTENT)}, got '{content}'"]
    elif not storage.holds(content):
        errors["content"] = [f"storage '{storage.storage}' does not hold {ContentType(content).label} "
                             f"content (it holds: {', '.join(storage.content) or 'nothing'})"]
    if not filename:
        errors["filename"] = ["a file name is required"]
    elif not _FILENAME_RE.match(filename) or len(filename) > 200:
        errors["filename"] = ["use letters, digits, '.', '_', '-' and '+' only (no folders), at most 200 characters"]
    elif content in ALLOWED_EXTENSIONS and not filename.lower().endswith(ALLOWED_EXTENSIONS[content]):
        errors["filename"] = [f"a {ContentType(content).label} must end with {' or '.join(ALLOWED_EXTENSIONS[content])}"]
    if bool(checksum) != bool(checksum_algorithm):
        errors["checksum" if checksum_algorithm else "checksum_algorithm"] = [
            "checksum and checksum algorithm go together: give both or neither"]
    if storage.status != StorageStatus.AVAILABLE:
        errors.setdefault("storage", []).append(f"storage '{storage.storage}' is not available right now")
    return errors


def upload_dir() -> Path:
    """Spool folder for uploads on their way to Proxmox (web and workers must share it)."""
    return Path(getattr(settings, "STORAGE_UPLOAD_DIR", settings.VAR_DIR / "uploads"))


def storage_upload(*, storage: Storage, user, content: str, uploaded_file, filename: str = "",
                   checksum: str = "", checksum_algorithm: str = ""):
    """Spool `uploaded_file` and queue an operation that streams it to Proxmox
    (`POST /nodes/{node}/storage/{storage}/upload`), follows the Proxmox task and refreshes the
    storage's content. Raises ValidationError (field map) before anything is written.
    The spooled copy is deleted when the operation ends, whatever the outcome."""
    check(user, "storage.upload", storage)  # 404 unseen, 403 (audited) seen but not allowed
    filename = (filename or getattr(uploaded_file, "name", "") or "").strip()
    errors = _validate_transfer(storage=storage, content=content, filename=filename, checksum=checksum,
                                checksum_algorithm=checksum_algorithm)
    if not getattr(uploaded_file, "size", 0):
        errors["file"] = ["the file is empty"]
    if errors:
        raise ValidationError(errors)
    folder = upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename  # Proxmox takes the multipart file name as the volume name
    temp_path = getattr(uploaded_file, "temporary_file_path", None)
    if temp_path:
        shutil.move(temp_path(), path)  # Django already spooled it to disk: just move it
    else:
        with open(path, "wb") as out:
            for chunk in uploaded_file.chunks():
                out.write(chunk)
    kwargs = {"storage_id": storage.pk, "content": content, "path": str(path), "filename": filename,
              "checksum": checksum or None, "checksum_algorithm": checksum_algorithm or None}
    try:
        with transaction.atomic():
            operation = operation_create(kind="storage.upload", user=user, task_name="storage.storage_upload",
                                         kwargs=kwargs, target=storage, cluster_id=storage.cluster_id,
                                         title=f"Upload {filename} to {storage}")
            transfer_quota.reserve_upload(operation, uploaded_file.size)  # a tenant's disk quota
            return operation
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def storage_download_url(*, storage: Storage, user, content: str, url: str, filename: str,
                         checksum: str = "", checksum_algorithm: str = "", verify_certificates: bool = True):
    """Queue an operation that asks Proxmox to download `url` into the storage
    (`POST .../download-url`), follows the task with progress and refreshes the content.
    Raises ValidationError (field map) when the input is wrong, when a tenant user's URL is not a
    public address (apps.storage.public_url) or their disk quota is full; nothing is queued then."""
    check(user, "storage.download", storage)
    errors = _validate_transfer(storage=storage, content=content, filename=(filename or "").strip(),
                                checksum=checksum, checksum_algorithm=checksum_algorithm)
    if not re.match(r"^https?://[^\s/]+", url or "", re.IGNORECASE):
        errors["url"] = ["enter an http:// or https:// address"]
    elif not as_actor(user).is_operator:  # the node fetches it inside the datacenter's network
        try:
            check_public_url(url)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    kwargs = {"storage_id": storage.pk, "content": content, "url": url, "filename": filename.strip(),
              "checksum": checksum or None, "checksum_algorithm": checksum_algorithm or None,
              "verify_certificates": bool(verify_certificates)}
    with transaction.atomic():
        operation = operation_create(kind="storage.download_url", user=user, task_name="storage.storage_download_url",
                                     kwargs=kwargs, target=storage, cluster_id=storage.cluster_id,
                                     title=f"Download {filename} to {storage}")
        transfer_quota.reserve_download(operation)  # a tenant's disk quota must have room left
        return operation


class _ProgressReader(io.FileIO):
    """A file whose reads report how much has been sent (the request streams it to Proxmox)."""

    def __init__(self, path: str, on_progress, step: int):
        super().__init__(path, "rb")
        self.total = os.path.getsize(path) or 1
        self.sent = 0
        self._next = step
        self._step = step
        self._on_progress = on_progress

    def read(self, size=-1):
        chunk = super().read(size)
        self.sent += len(chunk)
        if self.sent >= self._next or (not chunk and self.sent >= self.total):
            self._next = self.sent + self._step
            self._on_progress(self.sent, self.total)
        return chunk


def run_upload(operation, reporter: OperationReporter, *, storage_id: int, content: str, path: str,
               filename: str, checksum=None, checksum_algorithm=None) -> dict:
    """Worker side of storage_upload: stream the file (progress 0-80), follow the task (80-100)."""
    storage = Storage.objects.select_related("node").get(pk=storage_id)
    node = storage.node_name
    client = client_for(storage.cluster_id)
    try:
        size = os.path.getsize(path)
        reporter.event(f"Sending {filename} ({size} bytes) to {storage.storage} on {node}", progress=1)
        last = {"percent": 0}

        def on_progress(sent, total):
            percent = int(80 * sent / total)
            if percent > last["percent"]:
                last["percent"] = percent
                reporter.event(f"Sent {sent * 100 // total}% ({sent} of {total} bytes)", progress=percent)

        with _ProgressReader(path, on_progress, step=max(size // 20, 1 << 20)) as fh:
            upid = pve_storage.upload(client, node, storage.storage, fh, content=content, checksum=checksum,
                                      checksum_algorithm=checksum_algorithm)
        follow_upid(operation, client, node, upid, reporter=reporter, progress_range=(80, 100))
        volid = pve_storage.volid(storage.storage, content, filename)
        transfer_quota.record(operation, storage, volid)
        _refresh_after(storage, client, reporter)
        return {"volid": volid}
    finally:
        client.close()
        shutil.rmtree(Path(path).parent, ignore_errors=True)


def run_download_url(operation, reporter: OperationReporter, *, storage_id: int, content: str, url: str,
                     filename: str, checksum=None, checksum_algorithm=None, verify_certificates=True) -> dict:
    """Worker side of storage_download_url: one Proxmox task, progress parsed from its log."""
    storage = Storage.objects.select_related("node").get(pk=storage_id)
    node = storage.node_name
    client = client_for(storage.cluster_id)
    try:
        upid = pve_storage.download_url(client, node, storage.storage, url=url, filename=filename, content=content,
                                        checksum=checksum, checksum_algorithm=checksum_algorithm,
                                        verify_certificates=verify_certificates)
        follow_upid(operation, client, node, upid, reporter=reporter, progress_parser=tasklog.parse_download)
        volid = pve_storage.volid(storage.storage, content, filename)
        transfer_quota.record(operation, storage, volid)
        _refresh_after(storage, client, reporter)
        return {"volid": volid}
    finally:
        client.close()


def _refresh_after(storage: Storage, client, reporter: OperationReporter) -> None:
    try:
        counts = storage_content_refresh(storage=storage, client=client)
        reporter.event(f"Content list of {storage.storage} refreshed ({counts['created']} new)")
    except ProxmoxError as exc:  # the upload itself succeeded; the list catches up next refresh
        reporter.event(f"Could not refresh the content list: {exc}", level="warning")
