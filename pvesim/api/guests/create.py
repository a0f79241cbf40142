"""Creating guests: the checks and steps qmcreate and vzcreate (and clone) share."""

from __future__ import annotations

import re
import time
import uuid
from typing import Callable

from ...errors import ApiError
from ...state import Cluster, Guest
from .base import still_exists, task_type
from .config import with_mac
from .disks import allocate_disks
from .lifecycle import ha_add, start_guest


def check_vm_allocate(ctx, vmid: int, pool: str | None) -> None:
    """VM.Allocate on /vms/{vmid}, or on /pool/{pool} when a pool is given."""
    if pool and ctx.has(f"/pool/{pool}", "VM.Allocate"):
        return
    ctx.check(f"/vms/{vmid}", "VM.Allocate")


def check_pool(cluster: Cluster, pool: str | None) -> None:
    if pool and pool not in cluster.pools:
        raise ApiError(500, f"pool '{pool}' does not exist")


def add_to_pool(cluster: Cluster, vmid: int, pool: str | None) -> None:
    if pool and pool in cluster.pools:
        for other in cluster.pools.values():
            other["vms"].discard(vmid)
        cluster.pools[pool]["vms"].add(vmid)


def check_vmid_free(cluster: Cluster, vmid: int, type_: str) -> None:
    existing = cluster.guests.get(vmid)
    if existing is not None:
        raise ApiError(500, f"unable to create {'VM' if type_ == 'qemu' else 'CT'} {vmid} - "
                            f"{existing.kind} {vmid} already exists on node '{existing.node}'")


def new_guest(cluster: Cluster, *, vmid: int, type_: str, node: str, config: dict) -> Guest:
    """Register a new guest (caller holds cluster.lock and has checked the vmid is free)."""
    guest = Guest(vmid=vmid, type=type_, node=node, config=config)
    cluster.guests[vmid] = guest
    return guest


def register_new_guest(cluster: Cluster, *, vmid: int, type_: str, node: str, config: dict, disks: dict,
                       defaults: dict | None = None) -> Guest:
    """Refuse a taken vmid, give each NIC a MAC, then register the guest holding `lock: create` with
    `config` minus `disks` (create_task allocates those) and `defaults` for keys left unset."""
    with cluster.lock:
        check_vmid_free(cluster, vmid, type_)
        for key in list(config):
            if re.fullmatch(r"net\d+", key):
                config[key] = with_mac(cluster, type_, str(config[key]))
        initial = {k: v for k, v in config.items() if k not in disks}
        for key, value in (defaults or {}).items():
            initial.setdefault(key, value)
        initial["lock"] = "create"
        return new_guest(cluster, vmid=vmid, type_=type_, node=node, config=initial)


def discard_new_guest(cluster: Cluster, guest: Guest, volids: list[str]) -> None:
    """Undo a failed create or clone: remove the volumes it allocated and the guest itself."""
    with cluster.lock:
        for volid in volids:
            cluster.remove_volume(volid, guest.node)
        if cluster.guests.get(guest.vmid) is guest:
            del cluster.guests[guest.vmid]


def create_task(ctx, guest: Guest, p: dict, disks: dict[str, str], build: Callable,
                finish: Callable[[dict], None] | None = None) -> str:
    """qmcreate/vzcreate for a guest from register_new_guest: allocate `disks`, run build(t) (the
    type's own log lines and sleeps), then under cluster.lock finish(config), unlock, join `pool` and
    add the HA resource; with `start` start it afterwards (HA starts managed guests itself).
    A failure leaves neither the guest nor any volume it allocated."""
    cluster, node, vmid = ctx.cluster, guest.node, guest.vmid
    pool, ha_managed, start_after = p.get("pool"), p.get("ha-managed"), bool(p.get("start"))

    def worker(t):
        created = []
        try:
            t.checkpoint()
            with cluster.lock:
                still_exists(cluster, guest)
                guest.config.update(disks)
            created.extend(allocate_disks(cluster, guest=guest, keys=list(disks), log=t.log))
            build(t)
            with cluster.lock:
                still_exists(cluster, guest)
                if finish is not None:
                    finish(guest.config)
                guest.config.pop("lock", None)
                add_to_pool(cluster, vmid, pool)
                if ha_managed:
                    ha_add(cluster, guest, "started" if start_after else "stopped")
                cluster.log_event(node, ctx.authid, f"create {guest.kind} {vmid}")
        except BaseException:
            discard_new_guest(cluster, guest, created)
            raise
        if start_after and not ha_managed:
            start_guest(cluster, guest, ctx.authid)

    return cluster.tasks.start(node=node, type=task_type(guest, "create"), id=vmid, user=ctx.authid, worker=worker)


def smbios_uuid() -> str:
    return f"uuid={uuid.uuid4()}"


def meta_line() -> str:
    return f"creation-qemu=10.1.2,ctime={int(time.time())}"
