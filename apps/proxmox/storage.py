"""Storage content: list, upload, download from a URL, delete a volume."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Required, TypedDict

from .errors import ProxmoxError, ProxmoxUnreachable


class ContentItem(TypedDict, total=False):
    """One item of GET .../content: volid, format and size promised; the rest optional."""

    volid: Required[str]
    format: Required[str]
    size: Required[int]
    content: str  # optional in the schema: read from the volid when missing (see content_type)
    ctime: int
    notes: str
    protected: int
    vmid: int


def volid(storage: str, content: str, filename: str) -> str:
    """The volume id Proxmox gives an uploaded or downloaded file: `storage:content/filename`."""
    return f"{storage}:{content}/{filename}"


def content_type(item: dict) -> str:
    """`content` when Proxmox says it, else what the volid's path names (`iso/`, `vztmpl/`, `backup/`)."""
    if item.get("content"):
        return item["content"]
    path = str(item.get("volid") or "").partition(":")[2]
    folder = path.split("/", 1)[0] if "/" in path else ""
    if folder in ("iso", "vztmpl", "backup", "snippets", "import"):
        return folder
    return "images" if path else ""


# vzdump-qemu-100-2025_01_31-12_00_00.vma.zst (file storages) or backup/vm/100/2025-01-31T12:00:00Z (PBS)
_BACKUP_NAME = re.compile(r"vzdump-(?:qemu|lxc|openvz)-(?P<vmid>\d+)-(?P<t>\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d)")
_PBS_NAME = re.compile(r"backup/(?:vm|ct)/(?P<vmid>\d+)/(?P<t>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")


def _complete(item: dict) -> ContentItem:
    """Fill the optional `content`, and for backups `vmid`/`ctime`, from the volid when missing."""
    out = dict(item, content=content_type(item))
    match = _BACKUP_NAME.search(out["volid"]) or _PBS_NAME.search(out["volid"])
    if match:
        out.setdefault("vmid", int(match["vmid"]))
        if not out.get("ctime"):
            fmt = "%Y_%m_%d-%H_%M_%S" if "_" in match["t"] else "%Y-%m-%dT%H:%M:%SZ"
            out["ctime"] = int(datetime.strptime(match["t"], fmt).replace(tzinfo=timezone.utc).timestamp())
    return out  # type: ignore[return-value]


def content(client, node: str, storage: str) -> list[ContentItem]:
    """GET /nodes/{node}/storage/{storage}/content, each item completed from its volid."""
    return [_complete(i) for i in client.get(f"nodes/{node}/storage/{storage}/content") or []
            if isinstance(i, dict) and i.get("volid")]


def content_any_node(client, nodes: list[str], storage: str) -> list[ContentItem]:
    """Ask each node that sees `storage` in turn until one answers (shared storage)."""
    last_error: ProxmoxError | None = None
    for node in nodes:
        try:
            return content(client, node, storage)
        except ProxmoxUnreachable as exc:
            last_error = exc
    raise last_error or ProxmoxUnreachable(f"no node reports storage '{storage}'")


def _transfer_params(content: str, checksum: str | None, checksum_algorithm: str | None) -> dict:
    params = {"content": content}
    if checksum:
        params.update({"checksum": checksum, "checksum-algorithm": checksum_algorithm})
    return params


def upload(client, node: str, storage: str, fileobj, *, content: str, checksum: str | None = None,
           checksum_algorithm: str | None = None) -> str:
    """POST .../upload (multipart; the file object's name is the volume name) -> UPID."""
    return client.post(f"nodes/{node}/storage/{storage}/upload", filename=fileobj,
                       **_transfer_params(content, checksum, checksum_algorithm))


def download_url(client, node: str, storage: str, *, url: str, filename: str, content: str,
                 checksum: str | None = None, checksum_algorithm: str | None = None,
                 verify_certificates: bool = True) -> str:
    """POST .../download-url -> UPID."""
    return client.post(f"nodes/{node}/storage/{storage}/download-url", url=url, filename=filename,
                       **_transfer_params(content, checksum, checksum_algorithm),
                       **{"verify-certificates": bool(verify_certificates)})


def delete_volume(client, node: str, storage: str, volid: str) -> str | None:
    """DELETE .../content/{volid} -> UPID (or None when Proxmox deletes it synchronously)."""
    return client.delete(f"nodes/{node}/storage/{storage}/content/{volid}")
