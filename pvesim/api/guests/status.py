"""GET .../status/current, list items and rrddata of a guest."""

from __future__ import annotations

from typing import Any

from ...params import parse_props
from ...state import MiB, Cluster, Guest
from ..cluster import guest_disk_size, guest_usage
from ..nodes import rrd_series
from .lifecycle import ha_status


def _pid(guest: Guest) -> int:
    return 100000 + guest.vmid % 900000


def status_payload(cluster: Cluster, guest: Guest) -> dict:
    """GET .../status/current."""
    usage = guest_usage(cluster, guest)
    running = usage["uptime"] > 0 or guest.status == "running"
    out: dict[str, Any] = {
        "vmid": guest.vmid, "name": guest.name, "status": "running" if running else "stopped",
        "cpus": guest.maxcpu(), "maxmem": guest.maxmem(), "maxdisk": guest_disk_size(guest),
        "cpu": usage["cpu"], "mem": usage["mem"], "uptime": usage["uptime"], "netin": usage["netin"],
        "netout": usage["netout"], "diskread": usage["diskread"], "diskwrite": usage["diskwrite"],
        "ha": ha_status(cluster, guest),
    }
    if guest.type == "qemu":
        out["qmpstatus"] = guest.qmpstatus if running else "stopped"
        out["disk"] = 0
        out["memhost"] = usage["mem"]
        agent = parse_props(str(guest.config.get("agent", "0")), default_key="enabled").get("enabled", "0")
        out["agent"] = 1 if agent in ("1", "on", "yes", "true") else 0
        if running:
            out["running-machine"] = "pc-q35-10.1+pve0" if "q35" in str(guest.config.get("machine", "")) else "pc-i440fx-10.1+pve0"
            out["running-qemu"] = "10.1.2"
            out["balloon"] = guest.maxmem()
            out["freemem"] = max(guest.maxmem() - usage["mem"], 0)
    else:
        out["type"] = "lxc"
        swap = int(guest.config.get("swap", 512)) * MiB
        out["maxswap"] = swap
        out["swap"] = 0
        out["disk"] = int(guest_disk_size(guest) * 0.35) if running else 0
    if running:
        out["pid"] = _pid(guest)
    if guest.lock:
        out["lock"] = guest.lock
    if guest.config.get("tags"):
        out["tags"] = guest.config["tags"]
    if guest.is_template:
        out["template"] = 1
    return out


def list_item(cluster: Cluster, guest: Guest, full: bool = False) -> dict:
    """An item of GET /nodes/{node}/qemu|lxc (qemu `full=1` adds the QMP status and machine)."""
    out = status_payload(cluster, guest)
    out.pop("ha", None)
    drop = ["balloon", "freemem", "agent", "memhost"]
    if not full:
        drop += ["qmpstatus", "running-machine", "running-qemu"]
    for key in drop:
        out.pop(key, None)
    return out


def guest_rrddata(cluster: Cluster, guest: Guest, timeframe: str) -> list[dict]:
    usage = guest_usage(cluster, guest)
    maxmem, maxdisk = guest.maxmem(), guest_disk_size(guest)
    running = guest.status == "running"
    cpu = usage["cpu"] if running else 0.0
    mem = usage["mem"] if running else 0
    fields = {"cpu": (cpu, cpu * 0.4), "maxcpu": (guest.maxcpu(), 0), "mem": (mem, mem * 0.05),
              "maxmem": (maxmem, 0), "disk": (int(maxdisk * 0.35) if guest.type == "lxc" and running else 0, 0),
              "maxdisk": (maxdisk, 0), "netin": (180_000.0 if running else 0, 120_000.0 if running else 0),
              "netout": (90_000.0 if running else 0, 60_000.0 if running else 0),
              "diskread": (400_000.0 if running else 0, 300_000.0 if running else 0),
              "diskwrite": (250_000.0 if running else 0, 200_000.0 if running else 0)}
    if guest.type == "qemu":
        fields["memhost"] = fields["mem"]
    return rrd_series(guest.vmid, timeframe, fields)
