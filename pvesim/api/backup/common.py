"""vzdump option schema, backup locks, guest disks and guest selection shared by vzdump, jobs and the scheduler."""

from __future__ import annotations

import copy
import re
import time

from ...errors import ApiError
from ...params import P, PropString, parse_props
from ...scenario import is_disk_key, parse_size
from ...state import MiB, Cluster, Guest
from .. import storage as storage_api
from ..guests import check_lock


# ---- vzdump option schema (PVE::VZDump::Common json_config_properties) ------------------------

FLEECING = PropString({"enabled": P.boolean(), "storage": P.storage()}, default_key="enabled")
PERFORMANCE = PropString({"max-workers": P.integer(minimum=1, maximum=256), "pbs-entries-max": P.integer(minimum=1)})

VZDUMP_OPTS = {
    "all": P.boolean(), "bwlimit": P.integer(minimum=0), "compress": P.enum(["0", "1", "gzip", "lzo", "zstd"]),
    "dumpdir": P.string(), "exclude": P.string(format="pve-vmid-list"), "exclude-path": P.array(),
    "fleecing": P.string(prop=FLEECING), "ionice": P.integer(minimum=0, maximum=8),
    "lockwait": P.integer(minimum=0), "mailnotification": P.enum(["always", "failure"]), "mailto": P.string(),
    "maxfiles": P.integer(minimum=1), "mode": P.enum(["snapshot", "suspend", "stop"]),
    "notes-template": P.string(max_length=1024),
    "notification-mode": P.enum(["auto", "legacy-sendmail", "notification-system"]),
    "pbs-change-detection-mode": P.enum(["legacy", "data", "metadata"]), "performance": P.string(prop=PERFORMANCE),
    "pigz": P.integer(), "pool": P.string(), "protected": P.boolean(),
    "prune-backups": P.string(prop=storage_api.PRUNE_PROP), "quiet": P.boolean(), "remove": P.boolean(),
    "script": P.string(), "stdexcludes": P.boolean(), "stop": P.boolean(), "stopwait": P.integer(minimum=0),
    "storage": P.storage(), "tmpdir": P.string(), "vmid": P.string(format="pve-vmid-list"), "zstd": P.integer(),
}
VZDUMP_DEFAULTS = {
    "all": 0, "bwlimit": 0, "compress": "0", "ionice": 7, "lockwait": 180, "mailnotification": "always",
    "mode": "snapshot", "notification-mode": "auto", "pigz": 0, "prune-backups": "keep-all=1", "quiet": 0,
    "remove": 1, "stdexcludes": 1, "stop": 0, "stopwait": 10, "zstd": 1,
}
JOB_ONLY = {"comment": P.string(max_length=512), "dow": P.string(), "enabled": P.boolean(),
            "repeat-missed": P.boolean(), "schedule": P.string(format="pve-calendar-event", max_length=128),
            "starttime": P.string(pattern=r"\d{1,2}:\d{1,2}"), "node": P.string(format="pve-node")}
JOB_ID = P.string(optional=False, pattern=r"\S+", max_length=50)
COMPRESS_EXT = {"0": "", "1": ".lzo", "gzip": ".gz", "lzo": ".lzo", "zstd": ".zst"}
COMPRESS_RATIO = {"0": 0.62, "1": 0.45, "gzip": 0.36, "lzo": 0.45, "zstd": 0.33}
ROOT_ONLY = ("tmpdir", "dumpdir", "script", "job-id")
DOW = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _bad(field: str, message: str):
    raise ApiError(400, "Parameter verification failed.", {field: message})


def _vmid_list(text: str | None) -> list[int]:
    return [int(v) for v in re.split(r"[,;\s]+", text or "") if v]


def _clean_config(config: dict) -> dict:
    return {k: v for k, v in copy.deepcopy(config).items() if k != "lock"}


# ---- locks -------------------------------------------------------------------------------------

def set_lock(guest: Guest, lock: str) -> None:
    """Caller holds cluster.lock. PVE's set_lock: refuses a locked guest (`VM is locked (<lock>)`)."""
    check_lock(guest)
    guest.config["lock"] = lock


# ---- guest volumes -----------------------------------------------------------------------------

def backup_disks(guest: Guest) -> list[tuple[str, str, int, bool, str]]:
    """(key, volid, size, included, reason) for each volume a backup considers."""
    out = []
    for key, value in guest.config.items():
        if not (is_disk_key(key) or re.fullmatch(r"mp\d+", key)) or key.startswith("unused"):
            continue
        text = str(value)
        if "media=cdrom" in text:
            continue
        props = parse_props(text, default_key="volume" if guest.type == "lxc" else "file")
        volid = props.get("file") or props.get("volume") or ""
        size = parse_size(props["size"]) if props.get("size") else (528 * 1024 if key.startswith("efidisk") else 4 * MiB)
        if guest.type == "lxc":
            if key == "rootfs":
                out.append((key, volid, size, True, "rootfs"))
            elif props.get("backup") in ("1", "yes", "on", "true"):
                out.append((key, volid, size, True, "mountpoint with backup=1"))
            else:
                out.append((key, volid, size, False, "mountpoint without backup=1"))
        elif props.get("backup") in ("0", "no", "off", "false"):
            out.append((key, volid, size, False, "backup=no"))
        else:
            out.append((key, volid, size, True, "default include"))
    return out


def _human(size: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.1f} {units[i]}" if i else f"{int(value)} B"


def _sim_elapsed(cluster: Cluster, start: float) -> int:
    """Simulated seconds since `start` (real time scaled by --time-scale)."""
    return int((time.time() - start) * cluster.clock.scale)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m {s % 60}s"


# ---- selection ---------------------------------------------------------------------------------

def verify_vzdump_parameters(p: dict, check_missing: bool = True) -> None:
    for key in ("all", "exclude", "pool"):
        if p.get(key) and p.get("vmid"):
            _bad(key, "option conflicts with option 'vmid'")
    if p.get("prune-backups") is not None and p.get("maxfiles") is not None:
        _bad("prune-backups", "option conflicts with option 'maxfiles'")
    if check_missing and not (p.get("all") or p.get("stop") or p.get("pool")) and not p.get("vmid"):
        _bad("vmid", "property is missing")


def included_guests(cluster: Cluster, job: dict) -> dict[str, list[int]]:
    """PVE's get_included_guests: vmids per node ('' = configured but no such guest)."""
    out: dict[str, list[int]] = {}
    if job.get("vmid"):
        ids = _vmid_list(job["vmid"])
    elif job.get("pool"):
        ids = sorted(cluster.pools.get(job["pool"], {}).get("vms", set()))
    elif job.get("all"):
        excluded = set(_vmid_list(job.get("exclude")))
        ids = sorted(v for v in cluster.guests if v not in excluded)
    else:
        ids = []
    for vmid in ids:
        guest = cluster.guests.get(vmid)
        node = guest.node if guest else ""
        if job.get("node") and node and node != job["node"]:
            continue
        out.setdefault(node, []).append(vmid)
    return out


def command_line(vmids: list[int], p: dict) -> str:
    cmd = "vzdump"
    if p.get("vmid"):
        cmd += " " + " ".join(str(v) for v in vmids)
    for key, value in p.items():
        if key in ("vmid", "id", "starttime", "dow", "stdout", "enabled", "node", "schedule", "comment",
                   "repeat-missed", "type"):
            continue
        if isinstance(value, list):
            value = ",".join(value)
        text = str(value)
        cmd += f" --{key} " + (f"'{text}'" if re.search(r"[^\w.,:/=@+-]", text) or not text else text)
    return cmd
