"""The qmigrate worker: qemu-server QemuMigrate's prepare and phases (live, with local disks)."""

from __future__ import annotations

import time

from ...errors import TaskError
from ...state import Cluster, Guest
from ..guests import human as _human
from .resources import guest_volumes, local_resources
from .steps import (DISK_COPY_SPEED, MIGRATE_SPEED, _Abort, _copy_local_volumes, _duration, _move_guest, _sleep, _stamp,
                    _target_alive)


def _prepare_qemu(t, cluster: Cluster, guest: Guest, target: str, ip: str, opts: dict) -> bool:
    with cluster.lock:
        if cluster.guests.get(guest.vmid) is not guest:
            raise _Abort(f"Configuration file 'nodes/{guest.node}/qemu-server/{guest.vmid}.conf' does not exist")
        if guest.lock:
            raise _Abort(f"VM is locked ({guest.lock})")
        running = guest.status == "running"
        if running and not opts["online"]:
            raise _Abort("can't migrate running VM without --online")
        blockers, mapped, missing = local_resources(cluster, guest, running)
    if running:
        t.log(_stamp("conntrack state migration not supported or disabled, active connections might get dropped"))
    unmapped = [r for r in blockers if r not in mapped]
    if unmapped:
        if running or not opts["force"]:
            raise _Abort(f"can't migrate VM which uses local devices: {', '.join(unmapped)}")
        t.log(_stamp("migrating VM which uses local devices"))
    if mapped:
        live_missing = [f"{k}:{v['name']}" for k, v in sorted(mapped.items()) if not v.get("live-migration")]
        if missing.get(target):
            raise _Abort(f"can't migrate to '{target}': missing mapped devices {', '.join(missing[target])}")
        if running and live_missing:
            raise _Abort(f"can't live migrate running VM which uses following mapped devices: {', '.join(live_missing)}")
        t.log(_stamp("migrating VM which uses mapped local devices"))
    if not cluster.nodes[target].online:
        raise _Abort("Can't connect to destination address using public key")
    return running


def _qemu_worker(t, cluster: Cluster, guest: Guest, source: str, target: str, ip: str, opts: dict) -> None:
    start = time.time()
    locked = False
    try:
        running = _prepare_qemu(t, cluster, guest, target, ip, opts)
        with cluster.lock:
            if guest.lock:
                raise _Abort(f"VM is locked ({guest.lock})")
            guest.config["lock"] = "migrate"
            locked = True
        # phase 1: local disks (offline copy) and, for offline VMs, the config move
        t.log(_stamp(f"starting migration of VM {guest.vmid} to node '{target}' ({ip})"))
        _sleep(t, cluster, target, ip, 1)
        with cluster.lock:
            local = [v for v in guest_volumes(guest) if not cluster.storages[v["volid"].split(":", 1)[0]].shared]
        for vol in local:
            ref = "unused" if vol["unused"] else "attached"
            if vol["cdrom"]:
                raise _Abort(f"can't migrate local disk '{vol['volid']}': local cdrom image")
            t.log(_stamp(f"found local disk '{vol['volid']}' ({ref})"))
        if running and local and not opts["with-local-disks"]:
            for vol in local:
                t.log(_stamp(f"can't migrate local disk '{vol['volid']}': can't live migrate attached local disks "
                             f"without with-local-disks option"))
            raise _Abort("can't migrate VM - check log")
        if local and not running:
            t.log(_stamp("copying local disk images"))
            _copy_local_volumes(t, cluster, guest, target, ip, opts["storagemap"], local)
        if not running:
            with cluster.lock:
                _target_alive(cluster, target, ip)
                _move_guest(cluster, guest, target, running_after=False)
            t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
            return
        # phase 2: live migration
        t.log(_stamp(f"starting VM {guest.vmid} on remote node '{target}'"))
        _sleep(t, cluster, target, ip, 1.5)
        if local:
            for vol in local:
                t.log(_stamp(f"volume '{vol['volid']}' is '{vol['volid']}' on the target"))
        t.log(_stamp("start remote tunnel"))
        t.log(_stamp("ssh tunnel ver 1"))
        t.log(_stamp(f"starting online/live migration on unix:/run/qemu-server/{guest.vmid}.migrate"))
        t.log(_stamp("set migration capabilities"))
        t.log(_stamp("migration downtime limit: 100 ms"))
        t.log(_stamp("migration cachesize: 1.0 GiB"))
        t.log(_stamp("set migration parameters"))
        t.log(_stamp(f"start migrate command to unix:/run/qemu-server/{guest.vmid}.migrate"))
        try:
            if local:
                total_disk = sum(v["size"] for v in local)
                t.log(_stamp(f"{local[0]['key']}: start migration to nbd:unix:/run/qemu-server/{guest.vmid}_nbd.migrate"))
                for i in range(1, 6):
                    _sleep(t, cluster, target, ip, total_disk / DISK_COPY_SPEED / 5)
                    done = total_disk * i // 5
                    t.log(_stamp(f"drive-{local[0]['key']}: transferred {_human(done)} of {_human(total_disk)} "
                                 f"({done * 100 / total_disk:.2f}%) in {int((time.time() - start) * cluster.clock.scale)}s"))
                t.log(_stamp("all 'mirror' jobs are ready"))
            mem = guest.maxmem()
            state = int(mem * 0.97)  # RAM minus the last dirty pages sent during the downtime
            speed = MIGRATE_SPEED
            seconds = max(state / speed, 3.0)
            steps = max(4, min(20, int(seconds)))
            for i in range(1, steps + 1):
                _sleep(t, cluster, target, ip, seconds / steps)
                done = state * i // steps
                t.log(_stamp(f"migration active, transferred {_human(done)} of {_human(mem)} VM-state, {_human(speed)}/s"))
            t.log(_stamp(f"average migration speed: {_human(speed)}/s - downtime 52 ms"))
            t.log(_stamp("migration completed, transferred "
                         f"{_human(state)} VM-state"))
            t.log(_stamp("migration status: completed"))
        except _Abort as exc:
            t.log(_stamp(f"ERROR: online migrate failure - {exc}"))
            t.log(_stamp("aborting phase 2 - cleanup resources"))
            t.log(_stamp("migrate_cancel"))
            raise _Abort(str(exc), problems=True) from None
        # phase 3: move the config, resume on the target
        with cluster.lock:
            _target_alive(cluster, target, ip)
            cluster.guest_stopped(guest)
            started = guest.started_at
            try:
                _move_guest(cluster, guest, target, running_after=True)
            except TaskError as exc:  # a start hook refused the guest on the target (e.g. a PCI device in use)
                _move_guest(cluster, guest, source, running_after=False)
                cluster.guest_started(guest)
                raise _Abort(str(exc), problems=True) from None
            guest.started_at = started or guest.started_at
        if local:
            t.log(_stamp("stopping NBD storage migration server on target."))
        t.log(_stamp(f"migration finished successfully (duration {_duration(start, cluster)})"))
    except _Abort as exc:
        if exc.problems:
            t.log(_stamp(f"ERROR: migration finished with problems (duration {_duration(start, cluster)})"))
            raise TaskError("migration problems") from None
        t.log(_stamp(f"ERROR: migration aborted (duration {_duration(start, cluster)}): {exc}"))
        raise TaskError("migration aborted") from None
    finally:
        if locked:
            with cluster.lock:
                if guest.config.get("lock") == "migrate":
                    guest.config.pop("lock", None)
