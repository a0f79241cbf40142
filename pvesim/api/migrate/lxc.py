"""The vzmigrate worker: pve-container Migrate (offline, or restart mode)."""

from __future__ import annotations

import time

from ...errors import TaskError
from ...state import Cluster, Guest
from .resources import guest_volumes, unavailable_storages
from .steps import _Abort, _copy_local_volumes, _duration, _move_guest, _sleep, _stamp, _target_alive


def _lxc_worker(t, cluster: Cluster, guest: Guest, source: str, target: str, ip: str, opts: dict) -> None:
    start = time.time()
    locked = was_running = False
    try:
        with cluster.lock:
            if guest.lock:
                raise _Abort(f"CT is locked ({guest.lock})")
            running = guest.status == "running"
            if running:
                if opts["online"]:
                    raise _Abort("lxc live migration is currently not implemented")
                if not opts["restart"]:
                    raise _Abort("running container can only be migrated in restart mode")
            storages = unavailable_storages(cluster, guest)
            if target in storages:
                raise _Abort(f"storage '{storages[target][0]}' is not available on node '{target}'")
        if not cluster.nodes[target].online:
            raise _Abort("Can't connect to destination address using public key")
        with cluster.lock:
            guest.config["lock"] = "migrate"
            locked = True
        if running:
            t.log(_stamp(f"shutdown CT {guest.vmid}"))
            _sleep(t, cluster, target, ip, 4)
            with cluster.lock:
                cluster.guest_stopped(guest)
            was_running = True
        t.log(_stamp(f"starting migration of CT {guest.vmid} to node '{target}' ({ip})"))
        with cluster.lock:
            vols = guest_volumes(guest)
            local = [v for v in vols if not cluster.storages[v["volid"].split(":", 1)[0]].shared]
        for vol in vols:
            sid = vol["volid"].split(":", 1)[0]
            if cluster.storages[sid].shared:
                t.log(_stamp(f"volume '{vol['volid']}' is on shared storage '{sid}'"))
            else:
                t.log(_stamp(f"found local volume '{vol['volid']}' (in current VM config)"))
        _copy_local_volumes(t, cluster, guest, target, ip, opts["storagemap"], local)
        _sleep(t, cluster, target, ip, 1)
        with cluster.lock:
            _target_alive(cluster, target, ip)
            _move_guest(cluster, guest, target, running_after=False)
        t.log(_stamp("start final cleanup"))
        if was_running:
            t.log(_stamp("start container on target node"))
            with cluster.lock:
                try:
                    cluster.guest_started(guest)
                except TaskError as exc:
                    raise _Abort(str(exc), problems=True) from None
            was_running = False
        t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
    except _Abort as exc:
        if exc.problems:
            t.log(_stamp(f"ERROR: {exc}"))
            t.log(_stamp(f"ERROR: migration finished with problems (duration {_duration(start, cluster)})"))
            raise TaskError("migration problems") from None
        t.log(_stamp(f"ERROR: migration aborted (duration {_duration(start, cluster)}): {exc}"))
        raise TaskError("migration aborted") from None
    finally:
        with cluster.lock:
            if was_running and guest.status != "running" and cluster.nodes[guest.node].online:
                try:
                    cluster.guest_started(guest)  # restart mode: the CT comes back where it is
                except Exception:
                    pass
            if locked and guest.config.get("lock") == "migrate":
                guest.config.pop("lock", None)
