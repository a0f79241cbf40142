"""QEMU VMs and LXC containers: config, status, power, snapshots, disks, clone, template, delete,
create/restore, backup (vzdump) and migration. Functions that start a Proxmox task return its UPID
(None where Proxmox finishes synchronously)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Required, TypedDict

from . import versions
from .errors import ProxmoxNotFound
from .refs import GuestRef

POWER_ACTIONS = ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")


class CurrentStatus(TypedDict, total=False):
    """GET .../status/current: `status`, `vmid` (and `ha`) promised; the rest optional."""

    status: Required[str]
    vmid: Required[int]
    qmpstatus: str
    lock: str
    uptime: int
    name: str


class SnapshotItem(TypedDict, total=False):
    """One item of GET .../snapshot: `name` and `description` promised."""

    name: Required[str]
    description: Required[str]
    parent: str
    snaptime: int
    vmstate: int


# -- reads ---------------------------------------------------------------------------------------

def config(client, ref: GuestRef) -> tuple[dict, str]:
    """GET .../config: (config without its digest, digest) -- edits send the digest back."""
    data = dict(client.get(f"{ref.path}/config") or {})
    return data, str(data.pop("digest", "") or "")


def snapshots(client, ref: GuestRef) -> list[SnapshotItem]:
    """GET .../snapshot, without the `current` pseudo-entry ("You are here!")."""
    return [i for i in client.get(f"{ref.path}/snapshot") or [] if i.get("name") not in (None, "current")]


def rrddata(client, ref: GuestRef, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict]:
    return client.get(f"{ref.path}/rrddata", timeframe=timeframe, cf=cf) or []


def current(client, ref: GuestRef) -> CurrentStatus:
    """GET .../status/current; `state` below reads the most precise status it carries."""
    return client.get(f"{ref.path}/status/current") or {}


def state(status: CurrentStatus) -> str:
    """QEMU's `qmpstatus` (running/paused/prelaunch) when present, else `status`."""
    return status.get("qmpstatus") or status.get("status") or ""


# -- writes --------------------------------------------------------------------------------------

def update_config(client, ref: GuestRef, *, digest: str | None = None, delete=(), **params) -> None:
    """PUT .../config (synchronous); with `digest` Proxmox refuses when someone changed it since."""
    client.put(f"{ref.path}/config", digest=digest or None, delete=",".join(delete) or None, **params)


def power(client, ref: GuestRef, action: str, **params) -> str:
    """POST .../status/{action} -> UPID."""
    if action not in POWER_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(POWER_ACTIONS)}, got '{action}'")
    return client.post(f"{ref.path}/status/{action}", **params)


def resize(client, ref: GuestRef, disk: str, size: str, *, digest: str | None = None) -> str | None:
    """PUT .../resize (grow only) -> UPID (QEMU) or None (synchronous)."""
    return client.put(f"{ref.path}/resize", disk=disk, size=size, digest=digest or None)


def snapshot_create(client, ref: GuestRef, name: str, **params) -> str:
    return client.post(f"{ref.path}/snapshot", snapname=name, **params)


def snapshot_rollback(client, ref: GuestRef, name: str) -> str:
    return client.post(f"{ref.path}/snapshot/{name}/rollback")


def snapshot_delete(client, ref: GuestRef, name: str) -> str:
    return client.delete(f"{ref.path}/snapshot/{name}")


def clone(client, ref: GuestRef, newid: int, **params) -> str:
    return client.post(f"{ref.path}/clone", newid=newid, **params)


def template(client, ref: GuestRef) -> str | None:
    """POST .../template -> UPID (QEMU) or None (LXC converts synchronously)."""
    return client.post(f"{ref.path}/template")


def destroy(client, ref: GuestRef, *, purge: bool = False, unreferenced_disks: bool = False) -> str:
    return client.delete(ref.path, purge=1 if purge else None,
                         **{"destroy-unreferenced-disks": 1 if unreferenced_disks else None})


def create(client, node: str, kind: str, **params) -> str:
    """POST /nodes/{node}/{qemu|lxc} (also a restore: `archive=` for QEMU, `ostemplate=` + `restore=1`
    for LXC) -> UPID."""
    if kind not in ("qemu", "lxc"):
        raise ValueError(f"kind must be 'qemu' or 'lxc', got '{kind}'")
    return client.post(f"nodes/{node}/{kind}", **params)


def restore(client, node: str, kind: str, *, vmid: int, volid: str, **params) -> str:
    archive = {"archive": volid} if kind == "qemu" else {"ostemplate": volid, "restore": True}
    return create(client, node, kind, vmid=vmid, **archive, **params)


def backup(client, node: str, vmid: int, **params) -> str:
    """POST /nodes/{node}/vzdump for one guest -> UPID."""
    return client.post(f"nodes/{node}/vzdump", vmid=vmid, **params)


# -- migration -----------------------------------------------------------------------------------

@dataclass
class MigrationPrecheck:
    """What GET .../migrate said, every optional part with its fallback.

    `allowed_nodes` is None when Proxmox did not name the targets (a running VM before
    qemu-server 8.3.9, a container whose node has no precheck): callers then offer the online
    nodes and let the migrate call itself be the final word. `running` is None when unknown."""

    available: bool
    running: bool | None
    allowed_nodes: list[str] | None
    not_allowed_nodes: dict[str, dict] = field(default_factory=dict)
    local_disks: list[dict] = field(default_factory=list)
    local_resources: list[str] = field(default_factory=list)
    mapped_resources: list[str] = field(default_factory=list)
    mapped_resource_info: dict = field(default_factory=dict)


def _either(data: dict, name: str):
    # QEMU spells it allowed_nodes, LXC allowed-nodes (and likewise not_allowed_nodes).
    return data.get(name, data.get(name.replace("_", "-")))


def migrate_precheck(client, ref: GuestRef, *, pve_version: str | None = None) -> MigrationPrecheck:
    """GET .../migrate (one call, or none for a container on a node older than 9.0)."""
    if ref.kind == "lxc" and not versions.has_lxc_migrate_precheck(pve_version):
        return MigrationPrecheck(available=False, running=None, allowed_nodes=None)
    try:
        data = client.get(f"{ref.path}/migrate") or {}
    except ProxmoxNotFound as exc:
        # 501 / 404 "Method ... not implemented": a node without this precheck (LXC before 9.0).
        if ref.kind == "lxc" and exc.status in (404, 501) and "does not exist" not in exc.message:
            return MigrationPrecheck(available=False, running=None, allowed_nodes=None)
        raise
    allowed = _either(data, "allowed_nodes")
    running = data.get("running")
    return MigrationPrecheck(
        available=True,
        running=None if running is None else bool(int(running or 0)),
        allowed_nodes=None if allowed is None else [str(n) for n in allowed],
        not_allowed_nodes=_either(data, "not_allowed_nodes") or {},
        local_disks=[d for d in data.get("local_disks") or [] if isinstance(d, dict)],
        local_resources=list(data.get("local_resources") or []),
        mapped_resources=list(data.get("mapped-resources") or []),
        mapped_resource_info=data.get("mapped-resource-info") or {},
    )


def migrate(client, ref: GuestRef, target: str, *, online: bool | None = None, with_local_disks: bool = False,
            restart: bool = False) -> str:
    """POST .../migrate -> UPID (qmigrate/vzmigrate, or hamigrate when HA manages the guest).
    QEMU: `online` for a running VM; LXC: `restart` for a running container."""
    params: dict = {"target": target}
    if ref.kind == "qemu":
        params["online"] = online
        params["with-local-disks"] = True if with_local_disks else None
    else:
        params["restart"] = True if restart else None
    return client.post(f"{ref.path}/migrate", **params)
