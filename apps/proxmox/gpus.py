"""GPUs given to guests: cluster PCI mappings (writes), the `hostpciN` / LXC `devN` values that
use them, and reading those back from a guest's config (pve-semantics §5.2-5.4).

Reads of the inventory (devices, mdev types, the mapping list) stay in `hardware`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Required, TypedDict

# qemu-server: hostpci0..hostpci15; pve-container: dev0..dev255.
HOSTPCI_SLOTS = 16
LXC_DEV_SLOTS = 256
_HOSTPCI_KEY = re.compile(r"hostpci(\d+)")
_DEV_KEY = re.compile(r"dev(\d+)")


class MapEntry(TypedDict, total=False):
    """One `map` entry of a PCI mapping: node, path, id promised."""

    node: Required[str]
    path: Required[str]  # 0000:41:00.0, or alternatives a;b (SR-IOV VFs: first free wins)
    id: Required[str]  # vendor:device, 10de:26b9
    subsystem_id: str  # written `subsystem-id`
    iommugroup: int
    description: str


class MappingDetail(TypedDict, total=False):
    """GET /cluster/mapping/pci/{id}: id, description, map promised; flags only when set."""

    id: Required[str]
    description: Required[str]
    map: Required[list[str]]
    mdev: int
    digest: str


@dataclass(frozen=True)
class GpuSlot:
    """A GPU a guest's config holds: `hostpciN` of a VM or `devN` of a container."""

    key: str  # hostpci0 | dev0
    mapping: str = ""  # mapping id (VMs using a mapping)
    host: str = ""  # raw PCI address (VMs without a mapping)
    mdev: str = ""  # mdev type, for a slice of a card
    path: str = ""  # device node of a container (/dev/nvidia0)


def map_entry_text(entry: MapEntry) -> str:
    """`node=pve1,path=0000:41:00.0,id=10de:26b9[,subsystem-id=..][,iommugroup=..]` as Proxmox stores it."""
    parts = [f"node={entry['node']}", f"path={entry['path']}", f"id={entry['id']}"]
    if entry.get("subsystem_id"):
        parts.append(f"subsystem-id={entry['subsystem_id']}")
    if entry.get("iommugroup") is not None and int(entry.get("iommugroup", -1)) >= 0:
        parts.append(f"iommugroup={int(entry['iommugroup'])}")
    if entry.get("description"):
        parts.append(f"description={entry['description']}")
    return ",".join(parts)


def pci_mapping(client, mapping_id: str) -> MappingDetail | None:
    """The mapping, or None when Proxmox has none by that id (it answers 500 'not found')."""
    from .errors import ProxmoxError

    try:
        return client.get(f"cluster/mapping/pci/{mapping_id}")
    except ProxmoxError as exc:
        if "not found" in str(exc) or exc.status == 404:
            return None
        raise


def pci_mapping_create(client, mapping_id: str, entries: list[MapEntry], *, description: str = "",
                       mdev: bool = False, live_migration: bool = False) -> None:
    """POST /cluster/mapping/pci (synchronous; Mapping.Modify on /mapping/pci)."""
    params = {"id": mapping_id, "map": [map_entry_text(e) for e in entries], "mdev": int(mdev),
              "live-migration-capable": int(live_migration)}
    if description:
        params["description"] = description
    client.post("cluster/mapping/pci", **params)


def pci_mapping_update(client, mapping_id: str, entries: list[MapEntry], *, description: str = "",
                       mdev: bool = False, live_migration: bool = False, digest: str | None = None) -> None:
    """PUT /cluster/mapping/pci/{id}: replaces the map entries and flags (optimistic with `digest`)."""
    params = {"map": [map_entry_text(e) for e in entries], "mdev": int(mdev),
              "live-migration-capable": int(live_migration), "digest": digest}
    if description:
        params["description"] = description
    else:
        params["delete"] = "description"
    client.put(f"cluster/mapping/pci/{mapping_id}", **{k: v for k, v in params.items() if v is not None})


def pci_mapping_delete(client, mapping_id: str) -> None:
    client.delete(f"cluster/mapping/pci/{mapping_id}")


def hostpci_value(*, mapping: str, mdev: str = "", pcie: bool = True) -> str:
    """`mapping=<id>[,mdev=<type>][,pcie=1]` (pcie needs a q35 machine)."""
    return f"mapping={mapping}" + (f",mdev={mdev}" if mdev else "") + (",pcie=1" if pcie else "")


def lxc_dev_value(*, path: str, gid: int | None = None, mode: str = "") -> str:
    """`/dev/nvidia0[,gid=44][,mode=0666]` for an LXC `devN`."""
    return path + (f",gid={int(gid)}" if gid is not None else "") + (f",mode={mode}" if mode else "")


def _props(value: str, default_key: str) -> dict[str, str]:
    out = {}
    for part in str(value or "").split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
        elif part.strip():
            out[default_key] = part.strip()
    return out


def gpu_slots(config: dict, kind: str) -> list[GpuSlot]:
    """The GPUs (PCI devices, device nodes) in a guest's config, in slot order."""
    slots = []
    pattern, default_key = (_HOSTPCI_KEY, "host") if kind == "qemu" else (_DEV_KEY, "path")
    for key in sorted(config or {}, key=lambda k: (len(k), k)):
        if not pattern.fullmatch(key):
            continue
        props = _props(config[key], default_key)
        slots.append(GpuSlot(key=key, mapping=props.get("mapping", ""), host=props.get("host", ""),
                             mdev=props.get("mdev", ""), path=props.get("path", "")))
    return slots


def free_slots(config: dict, kind: str, count: int = 1) -> list[str]:
    """The first `count` unused `hostpciN` (VM) or `devN` (container) keys; fewer when full."""
    prefix, limit = ("hostpci", HOSTPCI_SLOTS) if kind == "qemu" else ("dev", LXC_DEV_SLOTS)
    return [f"{prefix}{i}" for i in range(limit) if f"{prefix}{i}" not in (config or {})][:count]


def is_q35(config: dict) -> bool:
    return "q35" in str((config or {}).get("machine") or "")


def set_container_devices(root_client, ref, *, values: dict[str, str] | None = None, delete=(),
                          digest: str | None = None) -> None:
    """PUT the container's `devN` keys (and nothing else) with a root@pam ticket session
    (session.login): Proxmox lets root@pam alone configure device passthrough, never an API
    token (`Permission check failed (configuring device passthrough is only allowed for root@pam)`).
    Synchronous; with `digest` Proxmox refuses when the config changed since it was read."""
    from .session import TicketClient

    values = dict(values or {})
    keys = list(values) + list(delete)
    if not keys:
        return
    if bad := [k for k in keys if not _DEV_KEY.fullmatch(k)]:
        raise ValueError(f"only devN keys go through the root@pam session, not {', '.join(bad)}")
    if ref.kind != "lxc":
        raise ValueError(f"devN is a container key; {ref.vmid} is a {ref.kind} guest")
    if not isinstance(root_client, TicketClient) or not root_client.is_root:
        raise ValueError("a container's devN needs a root@pam ticket session (session.login)")
    root_client.put(f"{ref.path}/config", digest=digest or None, delete=",".join(delete) or None, **values)
