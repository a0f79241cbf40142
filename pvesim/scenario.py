"""Build a `Cluster` from a scenario (TOML or JSON), or generate a large one for benchmarks."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path
from typing import Any

from .access import AccessControl, Acl, User
from .params import parse_props
from .state import GiB, MiB, Cluster, Guest, Node, PciDevice, Storage, Volume

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.toml"
DISK_KEY_PREFIXES = ("scsi", "virtio", "sata", "ide", "efidisk", "tpmstate", "rootfs", "mp", "unused")


def load_file(path: str | Path | None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_SCENARIO
    text = path.read_bytes()
    if path.suffix == ".json":
        return json.loads(text)
    return tomllib.loads(text.decode())


def parse_size(text: str) -> int:
    """'32G', '512M', '8' (GiB), '1T' -> bytes."""
    text = str(text).strip()
    units = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(float(text) * GiB)


def format_size(size: int) -> str:
    if size % GiB == 0:
        return f"{size // GiB}G"
    return f"{size // MiB}M"


def is_disk_key(key: str) -> bool:
    return any(key.startswith(p) and key[len(p):].isdigit() or key == p for p in DISK_KEY_PREFIXES)


def build(scenario: dict[str, Any], time_scale: float = 1.0) -> Cluster:
    meta = scenario.get("cluster", {})
    cluster = Cluster(name=meta.get("name", "demo"), time_scale=time_scale)
    cluster.options.update(meta.get("options", {}))
    for i, n in enumerate(scenario.get("nodes", []), start=1):
        node = Node(name=n["name"], nodeid=i, ip=n.get("ip", f"10.0.0.{i}"), maxcpu=int(n.get("cpus", 32)),
                    maxmem=int(n.get("memory_gib", 256)) * GiB, maxdisk=int(n.get("disk_gib", 100)) * GiB,
                    cpu_model=n.get("cpu_model", "AMD EPYC 9354 32-Core Processor"), online=n.get("online", True))
        for d in n.get("pci", []):
            dev = PciDevice(id=d["id"], vendor=d["vendor"], device=d["device"], vendor_name=d.get("vendor_name", ""),
                            device_name=d.get("device_name", ""), cls=d.get("class", "0x030000"),
                            subsystem_vendor=d.get("subsystem_vendor", ""), subsystem_device=d.get("subsystem_device", ""),
                            subsystem_vendor_name=d.get("subsystem_vendor_name", d.get("vendor_name", "")),
                            subsystem_device_name=d.get("subsystem_device_name", ""), iommugroup=int(d.get("iommugroup", -1)))
            for m in d.get("mdev", []):
                dev.mdev_types[m["type"]] = {"name": m.get("name", m["type"]), "description": m.get("description", ""),
                                             "total": int(m.get("total", 1))}
            node.pci.append(dev)
        node.device_nodes = list(n.get("device_nodes", []))
        cluster.nodes[node.name] = node
    cluster.local_node = meta.get("local_node") or next(iter(cluster.nodes), None)

    for s in scenario.get("storages", []):
        extra = {k: v for k, v in s.items() if k not in ("storage", "type", "content", "shared", "nodes", "total_gib", "enabled", "path")}
        cluster.storages[s["storage"]] = Storage(
            storage=s["storage"], type=s["type"], content=list(s.get("content", ["images"])),
            shared=bool(s.get("shared", s["type"] in ("nfs", "cifs", "cephfs", "rbd", "pbs"))),
            nodes=s.get("nodes"), total=int(s.get("total_gib", 1000)) * GiB, enabled=s.get("enabled", True),
            path=s.get("path"), extra=extra)

    for v in scenario.get("volumes", []):
        storage_id, volname = v["volid"].split(":", 1)
        content = v.get("content") or volname.split("/", 1)[0]
        fmt = v.get("format") or _format_of(volname)
        nodes = [v["node"]] if v.get("node") else ([None] if cluster.storages[storage_id].shared else list(cluster.nodes))
        for node in nodes:
            cluster.add_volume(Volume(volid=v["volid"], storage=storage_id, content=content,
                                      size=int(v.get("size_mib", 100)) * MiB, format=fmt, vmid=v.get("vmid"),
                                      node=node, notes=v.get("notes")))

    for p in scenario.get("pools", []):
        cluster.pools[p["poolid"]] = {"comment": p.get("comment", ""), "vms": set(), "storage": set(p.get("storage", []))}

    for g in scenario.get("guests", []):
        add_guest(cluster, g)

    for m in scenario.get("pci_mappings", []):
        cluster.pci_mappings[m["id"]] = {"description": m.get("description", ""), "map": list(m["map"]),
                                         "mdev": int(m.get("mdev", 0)),
                                         "live-migration-capable": int(m.get("live-migration-capable", 0))}

    access = AccessControl(cluster)
    for g in scenario.get("groups", []):
        access.groups[g["groupid"]] = {"comment": g.get("comment", "")}
    for u in scenario.get("users", []):
        access.users[u["userid"]] = User(userid=u["userid"], email=u.get("email", ""), comment=u.get("comment", ""),
                                         password=u.get("password"), groups=set(u.get("groups", [])),
                                         enable=bool(u.get("enable", True)))
    for r in scenario.get("roles", []):
        access.roles[r["roleid"]] = set(r.get("privs", []))
    for a in scenario.get("acl", []):
        for kind, key in (("user", "users"), ("group", "groups"), ("token", "tokens")):
            for ugid in a.get(key, []):
                access.acl.append(Acl(path=a["path"], ugid=ugid, type=kind, roleid=a["roleid"],
                                      propagate=bool(a.get("propagate", True))))
    for t in scenario.get("tokens", []):
        access.add_token(t["userid"], t["tokenid"], t.get("secret"), privsep=bool(t.get("privsep", True)),
                         comment=t.get("comment", ""))
    cluster.access = access
    cluster.scenario = scenario

    from . import api  # noqa: F401 - registers every route and exposes install()
    api.install(cluster, scenario)

    boot = random.Random(len(cluster.guests))
    for node in cluster.nodes.values():
        node.boot_time -= boot.uniform(20 * 86400, 60 * 86400)  # nodes have been up for weeks
    for guest in cluster.guests.values():
        if guest.status == "running":
            guest.status = "stopped"
            cluster.guest_started(guest)
            # Running guests of a scenario have been up for a while (hours to weeks), not 0 s.
            guest.started_at -= boot.uniform(3600, 30 * 86400)
    return cluster


def _format_of(volname: str) -> str:
    for suffix, fmt in ((".qcow2", "qcow2"), (".vmdk", "vmdk"), (".iso", "iso"), (".raw", "raw")):
        if volname.endswith(suffix):
            return fmt
    if "/vztmpl/" in f"/{volname}" or volname.startswith("vztmpl/"):
        return "tzst" if volname.endswith(".zst") else "txz" if volname.endswith(".xz") else "tgz"
    if volname.startswith("backup/"):
        return "vma.zst" if ".vma" in volname else "tar.zst"
    if volname.startswith("iso/"):
        return "iso"
    return "raw"


def add_guest(cluster: Cluster, g: dict[str, Any]) -> Guest:
    """Add a guest from scenario data, creating the volumes its config references."""
    config = {k: v for k, v in g.get("config", {}).items()}
    guest = Guest(vmid=int(g["vmid"]), type=g.get("type", "qemu"), node=g["node"], config=config,
                  status=g.get("status", "stopped"))
    guest.qmpstatus = guest.status
    for key, value in list(config.items()):
        if not is_disk_key(key) or "media=cdrom" in str(value):
            if "cloudinit" in str(value):
                _ensure_volume(cluster, guest, str(value).split(",")[0], 4 * MiB, "images")
            continue
        props = parse_props(str(value), default_key="file" if key != "rootfs" and not key.startswith("mp") else "volume")
        volid = props.get("file") or props.get("volume")
        if not volid or ":" not in volid:
            continue
        size = parse_size(props.get("size", "8G"))
        _ensure_volume(cluster, guest, volid, size, "rootdir" if guest.type == "lxc" else "images")
    pool = g.get("pool")
    if pool:
        cluster.pools.setdefault(pool, {"comment": "", "vms": set(), "storage": set()})["vms"].add(guest.vmid)
    cluster.guests[guest.vmid] = guest
    return guest


def _ensure_volume(cluster: Cluster, guest: Guest, volid: str, size: int, content: str) -> None:
    storage_id = volid.split(":", 1)[0]
    st = cluster.storages.get(storage_id)
    if st is None:
        return
    node = None if st.shared else guest.node
    if cluster.find_volume(volid, node) is None:
        cluster.add_volume(Volume(volid=volid, storage=storage_id, content=content, size=size,
                                  format=_format_of(volid.split(":", 1)[1]), vmid=guest.vmid, node=node))


def generate_scale(nodes: int, guests: int, seed: int = 42) -> dict[str, Any]:
    """A large cluster for benchmarks: `nodes` nodes, `guests` guests on shared Ceph storage."""
    rnd = random.Random(seed)
    scenario: dict[str, Any] = {
        "cluster": {"name": f"scale-{nodes}n-{guests}g", "local_node": "pve001"},
        "nodes": [{"name": f"pve{i:03d}", "ip": f"10.{10 + i // 250}.{i % 250}.1", "cpus": 128, "memory_gib": 1024,
                   "disk_gib": 500} for i in range(1, nodes + 1)],
        "storages": [
            {"storage": "local", "type": "dir", "path": "/var/lib/vz", "content": ["iso", "vztmpl", "backup"], "total_gib": 200},
            {"storage": "ceph-rbd", "type": "rbd", "pool": "vm-pool", "content": ["images", "rootdir"], "shared": True,
             "total_gib": 2_000_000},
        ],
        "pools": [{"poolid": f"tenant{i:02d}"} for i in range(20)],
        "guests": [],
    }
    for i in range(guests):
        vmid = 1000 + i
        node = f"pve{(i % nodes) + 1:03d}"
        kind = "lxc" if i % 4 == 3 else "qemu"
        running = rnd.random() < 0.8
        if kind == "qemu":
            config = {"name": f"vm-{vmid}", "cores": rnd.choice([1, 2, 4, 8]), "memory": str(rnd.choice([1024, 2048, 4096, 8192])),
                      "ostype": "l26", "scsi0": f"ceph-rbd:vm-{vmid}-disk-0,size={rnd.choice([16, 32, 64])}G",
                      "net0": f"virtio=BC:24:11:{vmid >> 16 & 255:02X}:{vmid >> 8 & 255:02X}:{vmid & 255:02X},bridge=vmbr0"}
        else:
            config = {"hostname": f"ct-{vmid}", "cores": rnd.choice([1, 2]), "memory": rnd.choice([512, 1024]), "swap": 512,
                      "ostype": "debian", "rootfs": f"ceph-rbd:vm-{vmid}-disk-0,size=8G",
                      "net0": "name=eth0,bridge=vmbr0,ip=dhcp,type=veth"}
        scenario["guests"].append({"vmid": vmid, "type": kind, "node": node, "status": "running" if running else "stopped",
                                   "pool": f"tenant{i % 20:02d}", "config": config})
    return scenario
