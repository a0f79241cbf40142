"""Task types and durations, guest locks, config digest, the task wrapper that holds a lock, and
the guest lookup behind the read routes."""

from __future__ import annotations

from typing import Any, Callable

from ...errors import ApiError, TaskError
from ...state import Cluster, Guest

TASK_TYPES = {
    "qemu": {"create": "qmcreate", "start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown",
             "reboot": "qmreboot", "reset": "qmreset", "suspend": "qmsuspend", "pause": "qmpause",
             "resume": "qmresume", "destroy": "qmdestroy", "clone": "qmclone", "template": "qmtemplate",
             "snapshot": "qmsnapshot", "rollback": "qmrollback", "delsnapshot": "qmdelsnapshot",
             "move": "qmmove", "resize": "resize", "config": "qmconfig", "restore": "qmrestore"},
    "lxc": {"create": "vzcreate", "start": "vzstart", "stop": "vzstop", "shutdown": "vzshutdown",
            "reboot": "vzreboot", "suspend": "vzsuspend", "resume": "vzresume", "destroy": "vzdestroy",
            "clone": "vzclone", "template": "vztemplate", "snapshot": "vzsnapshot", "rollback": "vzrollback",
            "delsnapshot": "vzdelsnapshot", "move": "move_volume", "resize": "resize", "restore": "vzrestore"},
}
# Simulated seconds a task takes (scaled by the clock).
DURATION = {"start": 2.0, "stop": 1.0, "shutdown": 4.0, "reset": 0.5, "suspend": 1.0, "resume": 0.5,
            "create": 5.0, "destroy": 2.0, "clone_full": 20.0, "clone_linked": 2.0, "template": 3.0,
            "snapshot": 3.0, "rollback": 3.0, "delsnapshot": 2.0, "move": 15.0, "resize": 1.0, "ha": 0.3,
            "config": 0.5}


def locked_message(guest: Guest) -> str:
    return f"{guest.kind} is locked ({guest.lock})"


def check_lock(guest: Guest, skiplock: bool = False) -> None:
    """Raise PVE's sync 500 `VM is locked (<lock>)` unless unlocked (or skiplock)."""
    if guest.lock and not skiplock:
        raise ApiError(500, locked_message(guest))


def check_skiplock(ctx, p: dict) -> bool:
    """`skiplock` is root@pam only (qemu-server: `Only root may use this option.`)."""
    if p.get("skiplock"):
        if not ctx.is_root:
            raise ApiError(400, "Parameter verification failed.", {"skiplock": "Only root may use this option."})
        return True
    return False


def lock_guest(cluster: Cluster, guest: Guest, lock: str, skiplock: bool = False) -> None:
    """Check the guest is unlocked, then set `lock: <lock>` (raises ApiError 500 when locked)."""
    with cluster.lock:
        check_lock(guest, skiplock)
        guest.config["lock"] = lock


def unlock_guest(cluster: Cluster, guest: Guest, lock: str | None = None) -> None:
    """Remove the lock (only if it is still `lock`, when given)."""
    with cluster.lock:
        if lock is None or guest.config.get("lock") == lock:
            guest.config.pop("lock", None)


def require_running(guest: Guest) -> None:
    """Sync check of the power routes that need a running guest."""
    if guest.status != "running":
        raise ApiError(500, f"{guest.kind} {guest.vmid} not running")


def with_guest(ctx, p: dict, type_: str, fn: Callable[[Guest], Any], *privs: str) -> Any:
    """Check any of `privs` (default VM.Audit) on /vms/{vmid}, then return fn(guest) under cluster.lock."""
    ctx.check(f"/vms/{p['vmid']}", *(privs or ("VM.Audit",)), any=True)
    with ctx.cluster.lock:
        return fn(ctx.cluster.guest(p["vmid"], type_, p["node"]))


def assert_digest(guest: Guest, digest: str | None) -> None:
    if digest and digest != guest.digest():
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")


def task_type(guest: Guest, action: str) -> str:
    return TASK_TYPES[guest.type][action]


def still_exists(cluster: Cluster, guest: Guest) -> None:
    """In a worker: the guest was not destroyed meanwhile (a task error as in PVE)."""
    if cluster.guests.get(guest.vmid) is not guest:
        raise TaskError(f"Configuration file '{guest.conf_path}' does not exist")


def still_unlocked(cluster: Cluster, guest: Guest, skiplock: bool = False) -> None:
    """In a worker, under cluster.lock: the guest still exists and holds no lock (task errors)."""
    still_exists(cluster, guest)
    if guest.lock and not skiplock:
        raise TaskError(locked_message(guest))


def guest_task(cluster: Cluster, guest: Guest, user: str, type_: str, worker: Callable, *,
               lock: str | None = None, lock_in_task: bool = False, skiplock: bool = False) -> str:
    """Run `worker(t)` as a task for this guest.

    lock given, lock_in_task False: the lock is checked and set now (sync ApiError when locked);
    lock_in_task True: checked and set at the start of the task (a task error when locked).
    The lock is always released when the worker ends (unless the worker already changed it).
    """
    if lock and not lock_in_task:
        lock_guest(cluster, guest, lock, skiplock)

    def run(t):
        held = bool(lock) and not lock_in_task
        try:
            if lock and lock_in_task:
                t.checkpoint()
                with cluster.lock:
                    still_unlocked(cluster, guest, skiplock)
                    guest.config["lock"] = lock
                    held = True
            worker(t)
        finally:
            if held:
                unlock_guest(cluster, guest, lock)

    return cluster.tasks.start(node=guest.node, type=type_, id=guest.vmid, user=user, worker=run)
