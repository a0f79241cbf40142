"""The simulated cluster: one in-memory model guarded by one re-entrant lock.

Every API module reads and writes through `Cluster`; everything that changes state takes
`cluster.lock`. Background actors (tasks, the HA manager, metrics) take the same lock.
Each area keeps its own plain-dict/dataclass data here so that modules stay independent:
guests and storage volumes below, access control in `cluster.access` (pvesim.access), HA in
`cluster.ha` (pvesim.ha), firewall in `cluster.firewall` (plain dicts), PCI mappings in
`cluster.pci_mappings`.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock
from .errors import ApiError
from .tasks import TaskManager

GiB = 1024 ** 3
MiB = 1024 ** 2


@dataclass
class PciDevice:
    id: str  # 0000:01:00.0
    vendor: str  # 0x10de
    device: str
    vendor_name: str
    device_name: str
    cls: str = "0x030000"
    subsystem_vendor: str = ""
    subsystem_device: str = ""
    subsystem_vendor_name: str = ""
    subsystem_device_name: str = ""
    iommugroup: int = -1
    # mdev type name -> {"description":..., "name":..., "total": N}; empty = no mdev support
    mdev_types: dict[str, dict] = field(default_factory=dict)
    # running mdev instances: uuid -> (type, vmid)
    mdev_instances: dict[str, tuple[str, int]] = field(default_factory=dict)
    in_use_by: int | None = None  # vmid of a running VM holding the whole device


@dataclass
class Node:
    name: str
    nodeid: int
    ip: str
    maxcpu: int = 32
    maxmem: int = 256 * GiB
    maxdisk: int = 100 * GiB
    cpu_model: str = "AMD EPYC 9354 32-Core Processor"
    online: bool = True  # powered on and reachable
    partitioned: bool = False  # cut off from corosync (reachable, but in its own partition)
    boot_time: float = field(default_factory=time.time)
    level: str = ""
    pci: list[PciDevice] = field(default_factory=list)
    device_nodes: list[str] = field(default_factory=list)  # /dev entries LXC devN may pass through
    base_load: float = 0.05  # idle CPU fraction

    @property
    def uptime(self) -> int:
        return int(time.time() - self.boot_time) if self.online else 0


@dataclass
class Storage:
    storage: str
    type: str  # dir, nfs, rbd, zfspool, lvmthin, cephfs, ...
    content: list[str]
    shared: bool = False
    nodes: list[str] | None = None  # None: all nodes
    total: int = 1024 * GiB
    enabled: bool = True
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # pool, server, export, ...

    def on_node(self, node: str) -> bool:
        return self.enabled and (self.nodes is None or node in self.nodes)

    @property
    def is_file_based(self) -> bool:
        return self.type in ("dir", "nfs", "cifs", "cephfs", "btrfs")


@dataclass
class Volume:
    volid: str
    storage: str
    content: str  # images | rootdir | iso | vztmpl | backup | snippets
    size: int
    format: str = "raw"
    vmid: int | None = None
    node: str | None = None  # for local storage: the node holding it; None on shared storage
    ctime: int = field(default_factory=lambda: int(time.time()))
    notes: str | None = None
    protected: bool = False
    parent: str | None = None  # linked clones: base volume
    used: int | None = None

    def to_api(self) -> dict:
        out = {"volid": self.volid, "content": self.content, "format": self.format, "size": self.size, "ctime": self.ctime}
        if self.vmid is not None:
            out["vmid"] = self.vmid
        if self.used is not None:
            out["used"] = self.used
        if self.notes is not None:
            out["notes"] = self.notes
        if self.protected:
            out["protected"] = 1
        if self.parent:
            out["parent"] = self.parent
        return out


@dataclass
class Snapshot:
    name: str
    config: dict[str, Any]
    snaptime: int
    description: str = ""
    vmstate: bool = False
    parent: str | None = None


@dataclass
class Guest:
    vmid: int
    type: str  # qemu | lxc
    node: str
    config: dict[str, Any]  # as `GET .../config` shows it (without digest)
    status: str = "stopped"  # running | stopped
    qmpstatus: str = "stopped"  # running | paused | stopped | ... (qemu)
    started_at: float | None = None
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    parent_snapshot: str | None = None  # snapshot the current state descends from
    pending: dict[str, Any] = field(default_factory=dict)
    cpu_load: float = field(default_factory=lambda: random.uniform(0.02, 0.35))
    mem_fraction: float = field(default_factory=lambda: random.uniform(0.3, 0.8))

    @property
    def kind(self) -> str:
        return "VM" if self.type == "qemu" else "CT"

    @property
    def lock(self) -> str | None:
        return self.config.get("lock")

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.config.get("hostname") or f"{self.type}-{self.vmid}")

    @property
    def is_template(self) -> bool:
        return str(self.config.get("template", "0")) == "1"

    @property
    def conf_path(self) -> str:
        folder = "qemu-server" if self.type == "qemu" else "lxc"
        return f"nodes/{self.node}/{folder}/{self.vmid}.conf"

    @property
    def uptime(self) -> int:
        return int(time.time() - self.started_at) if self.status == "running" and self.started_at else 0

    def digest(self) -> str:
        text = "\n".join(f"{k}: {self.config[k]}" for k in sorted(self.config))
        return hashlib.sha1(text.encode()).hexdigest()

    def maxmem(self) -> int:
        mem = str(self.config.get("memory", 512)).split("=")[-1]
        return int(mem) * MiB

    def maxcpu(self) -> int:
        cores = int(self.config.get("cores", 1))
        return cores * int(self.config.get("sockets", 1)) if self.type == "qemu" else cores


class Faults:
    """Injected faults: failing task types, added latency."""

    def __init__(self):
        self._lock = threading.Lock()
        self.task_failures: dict[str, list[str]] = {}
        self.latency: float = 0.0  # real seconds added to every API request
        self.path_latency: dict[str, float] = {}

    def fail_next(self, task_type: str, message: str, count: int = 1) -> None:
        with self._lock:
            self.task_failures.setdefault(task_type, []).extend([message] * count)

    def take_task_failure(self, task_type: str) -> str | None:
        with self._lock:
            queue = self.task_failures.get(task_type)
            if queue:
                return queue.pop(0)
        return None

    def clear(self) -> None:
        with self._lock:
            self.task_failures.clear()
            self.latency = 0.0
            self.path_latency.clear()


class Cluster:
    """The whole simulated datacenter."""

    def __init__(self, name: str = "demo", time_scale: float = 1.0, local_node: str | None = None):
        self.lock = threading.RLock()
        self.name = name
        self.clock = Clock(time_scale)
        self.faults = Faults()
        self.config_version = 1
        self.nodes: dict[str, Node] = {}
        self.local_node = local_node  # the node whose pveproxy answers the API
        self.storages: dict[str, Storage] = {}
        self.volumes: dict[str, Volume] = {}  # key: volid, or "<node>/<volid>" for local storage
        self.guests: dict[int, Guest] = {}
        self.pools: dict[str, dict] = {}  # poolid -> {"comment": str, "vms": set[int], "storage": set[str]}
        self.pci_mappings: dict[str, dict] = {}  # id -> {"description", "map": [str], "mdev", "live-migration-capable"}
        self.options: dict[str, Any] = {}  # /cluster/options (datacenter.cfg)
        self.backup_jobs: dict[str, dict] = {}  # /cluster/backup
        self.firewall: dict[str, Any] = {"cluster": {"options": {}, "rules": [], "groups": {}, "ipsets": {}, "aliases": {}},
                                         "nodes": {}, "guests": {}}
        self.tasks = TaskManager(self)
        self.requests: Counter = Counter()  # (method, path template) -> count
        self.unrouted: Counter = Counter()  # (method, path) of the 501s among them
        self.access = None  # pvesim.access.AccessControl, set by the scenario loader
        self.ha = None  # pvesim.ha.HAManager, set by the scenario loader
        self.rrd_seed = random.Random(7)
        self.events: list[dict] = []  # cluster log (/cluster/log)
        # Hooks other modules install (pvesim.api.<module>.install): called under cluster.lock.
        # A start hook may raise TaskError (e.g. a PCI device already in use) to refuse the start.
        self.guest_start_hooks: list = []
        self.guest_stop_hooks: list = []
        self.node_change_hooks: list = []  # fn(node) after power/partition changes
        self.background: list = []  # objects with .stop(), stopped on reset

    def guest_started(self, guest: "Guest") -> None:
        """Run start hooks, then mark the guest running (hooks may refuse with TaskError)."""
        for hook in self.guest_start_hooks:
            hook(guest)
        guest.status = "running"
        guest.qmpstatus = "running"
        guest.started_at = time.time()

    def guest_stopped(self, guest: "Guest") -> None:
        guest.status = "stopped"
        guest.qmpstatus = "stopped"
        guest.started_at = None
        for hook in self.guest_stop_hooks:
            hook(guest)

    def node_changed(self, node: "Node") -> None:
        for hook in self.node_change_hooks:
            hook(node)

    def stop(self) -> None:
        for obj in self.background:
            obj.stop()

    # ---- lookups that raise Proxmox's own errors -------------------------------------
    def node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise ApiError(500, f"hostname lookup '{name}' failed - failed to get address info for: {name}: Name or service not known")
        return node

    def guest(self, vmid: int, type_: str | None = None, node: str | None = None) -> Guest:
        """The guest as the URL names it: Proxmox looks the config up on the URL's node."""
        guest = self.guests.get(int(vmid))
        folder = "qemu-server" if type_ in (None, "qemu") else "lxc"
        if guest is None or (type_ is not None and guest.type != type_) or (node is not None and guest.node != node):
            where = node or (guest.node if guest else self.local_node)
            raise ApiError(500, f"Configuration file 'nodes/{where}/{folder}/{vmid}.conf' does not exist")
        return guest

    def storage(self, storage_id: str, node: str | None = None) -> Storage:
        st = self.storages.get(storage_id)
        if st is None:
            raise ApiError(500, f"storage '{storage_id}' does not exist")
        if node is not None and not (st.nodes is None or node in st.nodes):
            raise ApiError(500, f"storage '{storage_id}' is not available on node '{node}'")
        if not st.enabled:
            raise ApiError(500, f"storage '{storage_id}' is disabled")
        return st

    # ---- quorum ------------------------------------------------------------------------
    def expected_votes(self) -> int:
        return len(self.nodes)

    def partition_of(self, node_name: str) -> set[str]:
        """The set of nodes that can talk corosync with `node_name` (including itself)."""
        node = self.nodes[node_name]
        if not node.online:
            return set()
        if node.partitioned:
            return {node_name}
        return {n.name for n in self.nodes.values() if n.online and not n.partitioned}

    def quorate(self, node_name: str | None = None) -> bool:
        name = node_name or self.local_node
        if name not in self.nodes:
            return False
        return len(self.partition_of(name)) * 2 > self.expected_votes()

    def require_quorum(self, node_name: str | None = None) -> None:
        if not self.quorate(node_name):
            raise ApiError(500, "cluster not ready - no quorum?")

    # ---- volumes -----------------------------------------------------------------------
    def volume_key(self, volid: str, node: str | None) -> str:
        st = self.storages.get(volid.split(":", 1)[0])
        return volid if (st is None or st.shared) else f"{node}/{volid}"

    def find_volume(self, volid: str, node: str | None = None) -> Volume | None:
        return self.volumes.get(self.volume_key(volid, node))

    def add_volume(self, vol: Volume) -> Volume:
        self.volumes[self.volume_key(vol.volid, vol.node)] = vol
        return vol

    def remove_volume(self, volid: str, node: str | None = None) -> None:
        self.volumes.pop(self.volume_key(volid, node), None)

    def storage_used(self, storage_id: str, node: str | None) -> int:
        st = self.storages[storage_id]
        return sum(v.size for v in self.volumes.values()
                   if v.storage == storage_id and (st.shared or v.node == node))

    def alloc_disk_name(self, storage_id: str, vmid: int, node: str | None, prefix: str = "vm", fmt: str = "raw") -> str:
        """Next free `vm-<vmid>-disk-N` volid on a storage (file-based storages get a subfolder)."""
        st = self.storages[storage_id]
        n = 0
        while True:
            name = f"{prefix}-{vmid}-disk-{n}"
            volid = f"{storage_id}:{vmid}/{name}.{fmt}" if st.is_file_based else f"{storage_id}:{name}"
            taken = any(v.storage == storage_id and (name in v.volid) and (st.shared or v.node == node)
                        for v in self.volumes.values())
            if not taken:
                return volid
            n += 1

    # ---- ids ---------------------------------------------------------------------------
    def next_vmid(self) -> int:
        lower, upper = 100, 1000000
        spec = self.options.get("next-id")
        if spec:
            for part in str(spec).split(","):
                k, _, v = part.partition("=")
                if k == "lower":
                    lower = int(v)
                elif k == "upper":
                    upper = int(v)
        for vmid in range(lower, upper):
            if vmid not in self.guests:
                return vmid
        raise ApiError(500, f"unable to get any free VMID in range [{lower}, {upper}]")

    def log_event(self, node: str, user: str, msg: str, severity: int = 6) -> None:
        self.events.append({"time": int(time.time()), "node": node, "user": user, "msg": msg, "pri": severity,
                            "tag": "pvesim", "pid": 0, "uid": len(self.events) + 1})
        del self.events[:-500]
