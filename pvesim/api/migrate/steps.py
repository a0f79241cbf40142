"""Task steps both workers share: PVE's log stamps, aborts, waits that notice the target dying,
volume copies, the hand-over of the guest."""

from __future__ import annotations

import threading
import time

from ...errors import TaskError
from ...scenario import format_size
from ...state import Cluster, Guest, MiB, Volume
from ..guests import human as _human


MIGRATE_SPEED = 300 * MiB  # live-migration bandwidth (bytes per simulated second)
DISK_COPY_SPEED = 250 * MiB

_task_clock = threading.local()  # each task runs in its own thread: its start and the time scale


def _stamp(line: str) -> str:
    """PVE's migration log prefix, in simulated time so that durations read as PVE's would."""
    now = time.time()
    base = getattr(_task_clock, "base", None)
    if base is not None:
        now = base + (now - base) * _task_clock.scale
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))} {line}"


class _Abort(Exception):
    """A migration step failed: `message` is the reason, `problems` marks phase-2 failures."""

    def __init__(self, message: str, problems: bool = False):
        super().__init__(message)
        self.problems = problems


def _target_alive(cluster: Cluster, target: str, ip: str) -> None:
    node = cluster.nodes[target]
    if not node.online:
        raise _Abort(f"ssh: connect to host {ip} port 22: No route to host")


def _sleep(t, cluster: Cluster, target: str, ip: str, seconds: float) -> None:
    """Simulated wait that notices the target going away and injected failures."""
    try:
        t.sleep(seconds)
    except TaskError as exc:
        raise _Abort(str(exc)) from None
    _target_alive(cluster, target, ip)


def _move_guest(cluster: Cluster, guest: Guest, target: str, running_after: bool) -> None:
    """Hand the guest (and its local volumes) to `target`; caller holds cluster.lock."""
    source = guest.node
    for vol in list(cluster.volumes.values()):
        if vol.vmid == guest.vmid and vol.node == source and vol.content in ("images", "rootdir"):
            cluster.remove_volume(vol.volid, source)
            vol.node = target
            cluster.add_volume(vol)
    guest.node = target
    if running_after:
        started = guest.started_at
        cluster.guest_started(guest)
        guest.started_at = started or guest.started_at


def _copy_local_volumes(t, cluster: Cluster, guest: Guest, target: str, ip: str, storagemap: dict[str, str],
                        vols: list[dict]) -> None:
    for vol in vols:
        sid, name = vol["volid"].split(":", 1)
        st = cluster.storages[sid]
        target_sid = storagemap.get(sid, storagemap.get("", sid))
        with cluster.lock:
            dst = cluster.storages.get(target_sid)
            if dst is None or not dst.on_node(target):
                raise _Abort(f"storage '{target_sid}' is not available on node '{target}'")
            free = dst.total - cluster.storage_used(target_sid, None if dst.shared else target)
            if vol["size"] > free:
                raise _Abort(f"storage migration for '{vol['volid']}' to storage '{target_sid}' failed - "
                             f"out of space on target")
        if st.type == "zfspool":
            pool = st.extra.get("pool", "rpool/data")
            t.log(_stamp(f"full send of {pool}/{name}@__migration__ estimated size is {format_size(vol['size'])}"))
            t.log(_stamp(f"total estimated size is {format_size(vol['size'])}"))
            t.log(_stamp("TIME        SENT   SNAPSHOT"))
        steps = 5
        for i in range(1, steps + 1):
            _sleep(t, cluster, target, ip, vol["size"] / DISK_COPY_SPEED / steps)
            done = vol["size"] * i // steps
            if st.type == "zfspool":
                t.log(_stamp(f"{time.strftime('%H:%M:%S')}   {format_size(done):>6}   {pool}/{name}@__migration__"))
            else:
                t.log(_stamp(f"transferred {_human(done)} of {_human(vol['size'])} ({done * 100 / vol['size']:.2f}%)"))
        new_volid = f"{target_sid}:{name}"
        if st.type == "zfspool":
            t.log(_stamp(f"successfully imported '{new_volid}'"))
        t.log(_stamp(f"volume '{vol['volid']}' is '{new_volid}' on the target"))
        if new_volid != vol["volid"]:
            with cluster.lock:
                old = cluster.find_volume(vol["volid"], guest.node)
                if old is not None:
                    cluster.remove_volume(vol["volid"], guest.node)
                    cluster.add_volume(Volume(volid=new_volid, storage=target_sid, content=old.content, size=old.size,
                                              format=old.format, vmid=old.vmid, node=guest.node))
                guest.config[vol["key"]] = str(guest.config[vol["key"]]).replace(vol["volid"], new_volid, 1)


def _duration(start: float, cluster: Cluster) -> str:
    s = int((time.time() - start) * cluster.clock.scale)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
