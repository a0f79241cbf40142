"""/nodes/{node}/hardware: PCI discovery and mdev types, plus PCI passthrough at VM start
(pve-semantics §5.1, §5.4).

`install()` registers a start hook that resolves every `hostpciN` of a starting VM to devices
on its node and reserves them (whole devices via `PciDevice.in_use_by`, mediated devices as
`mdev_instances`), refusing with qemu-server's own errors; the stop hook releases them.
"""

from __future__ import annotations

import re

from ..errors import ApiError, TaskError
from ..params import P, parse_props
from ..router import api
from ..state import Cluster, Guest, PciDevice
from .mapping import node_entries

PCI_ID_OR_MAPPING = r"(?:(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F])|([a-zA-Z][a-zA-Z0-9_-]+)"
NVIDIA = "0x10de"

# Devices every server has but nobody passes through: they make the class blacklist visible.
CHIPSET = [
    ("0000:00:00.0", "0x060000", "0x1022", "0x14a4", "Advanced Micro Devices, Inc. [AMD]", "Genoa/Bergamo Root Complex", 0),
    ("0000:00:14.0", "0x0c0500", "0x1022", "0x790b", "Advanced Micro Devices, Inc. [AMD]", "FCH SMBus Controller", 1),
    ("0000:00:18.0", "0x060000", "0x1022", "0x14ad", "Advanced Micro Devices, Inc. [AMD]", "Genoa Data Fabric; Function 0", 2),
    ("0000:01:00.0", "0x010802", "0x144d", "0xa80c", "Samsung Electronics Co Ltd", "NVMe SSD Controller S4LV008[Pascal]", 3),
    ("0000:03:00.0", "0x0c0330", "0x1022", "0x15b6", "Advanced Micro Devices, Inc. [AMD]", "Raphael/Granite Ridge USB 3.1 xHCI", 4),
]


def install(cluster: Cluster, scenario) -> None:
    for node in cluster.nodes.values():
        have = {d.id for d in node.pci}
        for dev_id, cls, vendor, device, vname, dname, group in CHIPSET:
            if dev_id not in have:
                node.pci.append(PciDevice(id=dev_id, vendor=vendor, device=device, vendor_name=vname,
                                          device_name=dname, cls=cls, subsystem_vendor=vendor, subsystem_device="0x0000",
                                          subsystem_vendor_name=vname, iommugroup=group))
        node.pci.sort(key=lambda d: d.id)
    cluster.guest_start_hooks.append(lambda guest: reserve_devices(cluster, guest))
    cluster.guest_stop_hooks.append(lambda guest: release_devices(cluster, guest.vmid))


# ---- helpers ---------------------------------------------------------------------------

def normalize_id(pci_id: str) -> str:
    """`41:00.0` -> `0000:41:00.0` (sysfs always names the domain)."""
    pci_id = pci_id.strip().lower()
    return pci_id if pci_id.count(":") == 2 else f"0000:{pci_id}"


def find_devices(node, pci_id: str) -> list[PciDevice]:
    """Devices matching an id; without `.func` every function of the slot."""
    pci_id = normalize_id(pci_id)
    if "." in pci_id:
        return [d for d in node.pci if d.id == pci_id]
    return [d for d in node.pci if d.id.startswith(pci_id + ".")]


def mdev_available(dev: PciDevice, mdev_type: str) -> int:
    """Instances of `mdev_type` still creatable on `dev`."""
    info = dev.mdev_types.get(mdev_type)
    if info is None or dev.in_use_by is not None:
        return 0
    used = [t for t, _ in dev.mdev_instances.values()]
    if dev.vendor == NVIDIA and any(t != mdev_type for t in used):
        return 0  # NVIDIA vGPU: one profile per physical GPU at a time
    return max(0, int(info["total"]) - used.count(mdev_type))


def mdev_uuid(index: int, vmid: int) -> str:
    return f"{index:08d}-0000-0000-0000-{vmid:012d}"


def _holder(dev: PciDevice) -> int | None:
    if dev.in_use_by is not None:
        return dev.in_use_by
    for _, vmid in dev.mdev_instances.values():
        return vmid
    return None


def _free(dev: PciDevice, vmid: int, mdev: str | None) -> bool:
    if mdev:
        return mdev_available(dev, mdev) > 0
    holder = _holder(dev)
    return holder is None or holder == vmid


def check_device_nodes(cluster: Cluster, guest: Guest) -> None:
    """Container start: every devN path must exist on the node (PVE::LXC stats it). Proxmox sets no
    limit on how many containers share one; the portal's accounting does."""
    node = cluster.nodes[guest.node]
    for key in sorted(k for k in guest.config if re.fullmatch(r"dev\d+", k)):
        path = parse_props(str(guest.config[key]), default_key="path").get("path", "")
        if path not in node.device_nodes:
            raise TaskError(f"Could not get mode or device ID of {path}")


def reserve_devices(cluster: Cluster, guest: Guest) -> None:
    """Start hook: pick and reserve each hostpciN's device(s) or refuse with TaskError."""
    if guest.type == "lxc":
        check_device_nodes(cluster, guest)
        return
    if guest.type != "qemu":
        return
    node = cluster.nodes[guest.node]
    slots = sorted((int(k[7:]), v) for k, v in guest.config.items() if re.fullmatch(r"hostpci\d+", k))
    plan: list[tuple[int, list[PciDevice], str | None]] = []
    taken: set[str] = set()
    for index, value in slots:
        key = f"hostpci{index}"
        props = parse_props(str(value), default_key="host")
        mdev = props.get("mdev")
        if props.get("host") and props.get("mapping"):
            raise TaskError("Cannot set both 'host' and 'mapping'.")
        if props.get("mapping"):
            entries = node_entries(cluster, props["mapping"], guest.node)
            if not entries:
                raise TaskError(f"PCI device mapping not found for '{props['mapping']}'")
            alternatives = [path for e in entries for path in e.get("path", "").split(";") if path]
            candidates = [find_devices(node, path) for path in alternatives]
        elif props.get("host"):
            devices = []
            for part in props["host"].split(";"):
                found = find_devices(node, part)
                if not found:
                    raise TaskError(f"no PCI device found for '{normalize_id(part)}'")
                devices += found
            candidates = [devices]
        else:
            raise TaskError("Either 'host' or 'mapping' must be set.")
        for devices in candidates:
            for dev in devices:
                if dev.id in taken:
                    raise TaskError(f"device '{dev.id}' assigned more than once")
        if mdev:
            for devices in candidates:
                dev = devices[0] if devices else None
                if dev is not None and not dev.mdev_types:
                    raise TaskError(f"pci device '{dev.id}' does not support mediated devices")
                if dev is not None and mdev not in dev.mdev_types:
                    raise TaskError(f"pci device '{dev.id}' has no type '{mdev}'")
        chosen = None
        if len(candidates) > 1:
            for devices in candidates:
                if devices and all(_free(d, guest.vmid, mdev) and d.id not in taken for d in devices):
                    chosen = devices
                    break
            if chosen is None:
                raise TaskError(f"could not find a free device for '{key}'")
        else:
            chosen = candidates[0] if candidates else []
            if not chosen:
                raise TaskError(f"PCI device mapping not found for '{props.get('mapping')}'")
            for dev in chosen:
                if mdev:
                    if mdev_available(dev, mdev) <= 0:
                        raise TaskError(f"pci device '{dev.id}' has no available instances of '{mdev}'")
                elif _holder(dev) not in (None, guest.vmid):
                    raise TaskError(f"PCI device '{dev.id}' already in use by VMID '{_holder(dev)}'")
        taken.update(d.id for d in chosen)
        plan.append((index, chosen, mdev))
    for index, devices, mdev in plan:  # every check passed: reserve all at once
        if mdev:
            devices[0].mdev_instances[mdev_uuid(index, guest.vmid)] = (mdev, guest.vmid)
        else:
            for dev in devices:
                dev.in_use_by = guest.vmid


def release_devices(cluster: Cluster, vmid: int) -> None:
    """Stop hook: free whole devices and remove the VM's mdev instances on every node."""
    for node in cluster.nodes.values():
        for dev in node.pci:
            if dev.in_use_by == vmid:
                dev.in_use_by = None
            for uuid in [u for u, (_, holder) in dev.mdev_instances.items() if holder == vmid]:
                del dev.mdev_instances[uuid]


# ---- endpoints -------------------------------------------------------------------------

def _check_sys(ctx):
    ctx.check("/", "Sys.Audit", "Sys.Modify", any=True)


@api.get("/nodes/{node}/hardware", params={"node": P.node()}, proxyto="node")
def hardware_index(ctx, p):
    return [{"type": "pci"}, {"type": "usb"}]


@api.get("/nodes/{node}/hardware/usb", params={"node": P.node()}, proxyto="node")
def usb_list(ctx, p):
    ctx.check("/", "Sys.Modify")
    return []


@api.get("/nodes/{node}/hardware/pci", params={
    "node": P.node(), "pci-class-blacklist": P.string(default="05;06;0b", format="string-list"),
    "verbose": P.boolean(default=1),
}, proxyto="node")
def pci_list(ctx, p):
    _check_sys(ctx)
    cluster = ctx.cluster
    blacklist = [c.strip().lower() for c in re.split(r"[;,\s]+", p.get("pci-class-blacklist", "05;06;0b")) if c.strip()]
    verbose = p.get("verbose", 1)
    with cluster.lock:
        node = cluster.node(p["node"])
        out = []
        for dev in node.pci:
            if any(dev.cls.lower()[2:].startswith(prefix) for prefix in blacklist):
                continue
            item = {"id": dev.id, "class": dev.cls, "vendor": dev.vendor, "device": dev.device,
                    "iommugroup": dev.iommugroup}
            if dev.subsystem_vendor:
                item["subsystem_vendor"] = dev.subsystem_vendor
                item["subsystem_device"] = dev.subsystem_device
            if verbose:
                item["vendor_name"] = dev.vendor_name
                item["device_name"] = dev.device_name
                if dev.subsystem_vendor:
                    item["subsystem_vendor_name"] = dev.subsystem_vendor_name
                    item["subsystem_device_name"] = dev.subsystem_device_name
            if dev.mdev_types:
                item["mdev"] = 1
            out.append(item)
        return out


@api.get("/nodes/{node}/hardware/pci/{pci-id-or-mapping}", params={
    "node": P.node(), "pci-id-or-mapping": P.string(optional=False, pattern=PCI_ID_OR_MAPPING),
}, proxyto="node")
def pci_index(ctx, p):
    return [{"method": "mdev"}]


@api.get("/nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev", params={
    "node": P.node(), "pci-id-or-mapping": P.string(optional=False, pattern=PCI_ID_OR_MAPPING),
}, proxyto="node")
def mdev_list(ctx, p):
    _check_sys(ctx)
    cluster = ctx.cluster
    ref = p["pci-id-or-mapping"]
    with cluster.lock:
        node = cluster.node(p["node"])
        if re.fullmatch(r"(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]", ref):
            devices = find_devices(node, ref)
        else:
            entries = node_entries(cluster, ref, node.name)
            if not entries:
                raise ApiError(500, f"PCI device mapping not found for '{ref}'")
            devices = [d for e in entries for path in e.get("path", "").split(";") if path
                       for d in find_devices(node, path)]
        if not devices:
            raise ApiError(500, f"no PCI device found for '{ref}'")
        dev = devices[0]
        return [{"type": name, "available": mdev_available(dev, name), "name": info["name"],
                 "description": info["description"]} for name, info in dev.mdev_types.items()]
