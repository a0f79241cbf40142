"""Reading Proxmox task logs: progress percent per task type, an ETA from its rate, and the
migration log's two-phase progress (disks, then memory).

A parser is `fn(line) -> float | None` (percent 0-100). Parsers are chosen by the UPID task
type; apps may register their own with `register_progress_parser`.
"""

from __future__ import annotations

import re
import time
from typing import Callable

ProgressParser = Callable[[str], "float | None"]

_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_NUM_UNIT = r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?"
# `INFO:  45% (1.8 GiB of 4.0 GiB) in 10s, read: ...` (vzdump)
_VZDUMP = re.compile(r"^INFO:\s+(\d{1,3})%\s")
# `drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 12s` (mirror, qemu-img, clone, move disk)
_PAREN_PERCENT = re.compile(r"\((\d{1,3}(?:\.\d+)?)\s*(?:/100)?%\)")
# `migration active, transferred 1.1 GiB of 4.0 GiB VM-state, 112.0 MiB/s`
_TRANSFERRED_OF = re.compile(rf"transferred\s+{_NUM_UNIT}\s+of\s+{_NUM_UNIT}", re.IGNORECASE)
# `progress 40% (read 1717986918 bytes, duration 3 sec)` (qmrestore of a vma archive)
_RESTORE = re.compile(r"^progress\s+(\d{1,3})%\s+\(read")
# `migration status: active (transferred 123456, remaining 789, total 1000000)` (older qemu-server)
_TRANSFERRED_TOTAL = re.compile(r"transferred\s+(\d+),\s*remaining\s+\d+,\s*total\s+(\d+)")
# wget-style lines of download-url (`... 42% ...`)
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)%")


def _bytes(number: str, unit: str | None) -> float:
    return float(number) * _UNITS.get((unit or "").lower(), 1)


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))


def parse_vzdump(line: str) -> float | None:
    match = _VZDUMP.search(line)
    return _clamp(float(match.group(1))) if match else None


def parse_transfer(line: str) -> float | None:
    match = _PAREN_PERCENT.search(line)
    if match and ("transferred" in line.lower() or "/100%" in match.group(0)):
        return _clamp(float(match.group(1)))
    match = _TRANSFERRED_OF.search(line)
    if match:
        done, total = _bytes(match.group(1), match.group(2)), _bytes(match.group(3), match.group(4))
        return _clamp(100.0 * done / total) if total else None
    match = _TRANSFERRED_TOTAL.search(line)
    if match:
        done, total = float(match.group(1)), float(match.group(2))
        return _clamp(100.0 * done / total) if total else None
    return None


def parse_any(line: str) -> float | None:
    """Every known format; the default for task types without a parser of their own."""
    return parse_vzdump(line) if line.startswith("INFO:") else parse_transfer(line)


def parse_restore(line: str) -> float | None:
    match = _RESTORE.search(line)
    return _clamp(float(match.group(1))) if match else parse_any(line)


def parse_download(line: str) -> float | None:
    """download-url logs wget-style lines (`... 42% ...`); other lines do not move it."""
    match = _PERCENT.search(line)
    return min(100.0, float(match.group(1))) if match else None


_PARSERS: dict[str, ProgressParser] = {
    "vzdump": parse_vzdump,
    "qmigrate": parse_transfer, "vzmigrate": parse_transfer, "hamigrate": parse_transfer,
    "qmclone": parse_transfer, "vzclone": parse_transfer, "qmmove": parse_transfer,
    "move_volume": parse_transfer, "qmrestore": parse_restore, "vzrestore": parse_restore,
    "download": parse_download,
}


def register_progress_parser(task_type: str, parser: ProgressParser) -> None:
    _PARSERS[task_type] = parser


def parser_for_task_type(task_type: str) -> ProgressParser:
    return _PARSERS.get(task_type, parse_any)


class EtaEstimator:
    """Seconds left, from the average rate since the first progress seen (None until it moves)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._first: tuple[float, float] | None = None

    def update(self, progress: float) -> int | None:
        now = self._clock()
        if self._first is None:
            self._first = (now, progress)
            return None
        t0, p0 = self._first
        if progress <= p0 or now <= t0:
            return None
        rate = (progress - p0) / (now - t0)
        return int(round((100.0 - progress) / rate))


# -- migration: disks first, then memory ---------------------------------------------------------

_SIZE = r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B|[KMGT])?"
_STATE_LINE = re.compile(rf"migration active, transferred {_SIZE} of {_SIZE} VM-state")
_DISK_LINE = re.compile(rf"transferred {_SIZE} of {_SIZE}")
_ZFS_TOTAL = re.compile(rf"total estimated size is {_SIZE}")
_ZFS_SENT = re.compile(rf"\d\d:\d\d:\d\d\s+{_SIZE}\s+\S+@__migration__\s*$")


def _size_bytes(number: str, unit: str | None) -> float:
    unit = (unit or "").upper().replace("IB", "").rstrip("B")
    return float(number) * 1024 ** " KMGT".index(unit or " ")


class MigrationProgress:
    """Percent of the whole migration from its log lines: the disk copy fills the first part (its
    share is the disks' part of disks + memory), the VM state the rest. Never moves back."""

    def __init__(self, disk_bytes: int, state_bytes: int):
        total = disk_bytes + state_bytes
        self.disk_share = disk_bytes / total if total else (0.0 if state_bytes else 1.0)
        self.disk_bytes = disk_bytes
        self.finished = 0.0  # bytes of the volumes already copied
        self.volume = (0.0, 0.0)  # done, size of the volume being copied
        self.percent = 0.0

    def _volume(self, done: float, size: float) -> float:
        old_done, old_size = self.volume
        if old_size and (size != old_size or done < old_done):  # the next volume started
            self.finished += old_size
        self.volume = (done, size)
        whole = max(self.disk_bytes, self.finished + size) or 1
        return 100.0 * self.disk_share * min(1.0, (self.finished + done) / whole)

    def __call__(self, line: str) -> float | None:
        if match := _STATE_LINE.search(line):
            done, size = _size_bytes(*match.group(1, 2)), _size_bytes(*match.group(3, 4))
            # Memory is being copied, so it counts even when its size was not known up front.
            share = self.disk_share if self.disk_bytes else 0.0
            percent = 100.0 * (share + (1 - share) * min(1.0, done / size if size else 0))
        elif match := _DISK_LINE.search(line):
            percent = self._volume(_size_bytes(*match.group(1, 2)), _size_bytes(*match.group(3, 4)))
        elif match := _ZFS_TOTAL.search(line):
            percent = self._volume(0.0, _size_bytes(*match.group(1, 2)))
        elif (match := _ZFS_SENT.search(line)) and self.volume[1]:
            percent = self._volume(_size_bytes(*match.group(1, 2)), self.volume[1])
        else:
            return None
        self.percent = max(self.percent, min(100.0, percent))
        return self.percent


# -- the most telling error line of a failed task ------------------------------------------------

_ABORTED = re.compile(r"ERROR: migration aborted \(duration [^)]*\): (?P<msg>.+)$")
_ERROR = re.compile(r"ERROR: (?P<msg>.+)$")
_SUMMARY = re.compile(r"migration (finished with problems|aborted)")
_BACKUP_FAILED = re.compile(r"ERROR: Backup of VM \d+ failed - (?P<msg>.+)$")


def migration_error(lines: list[str]) -> str:
    """The reason in a migration log: `migration aborted (...): <why>` or the first specific ERROR line."""
    for line in lines:
        if match := _ABORTED.search(line):
            return match["msg"]
    for line in lines:
        match = _ERROR.search(line)
        if match and not _SUMMARY.match(match["msg"]):
            return match["msg"].replace("online migrate failure - ", "online migrate failure: ")
    return ""


def backup_error(lines: list[str]) -> str:
    """The reason in a vzdump log: `ERROR: Backup of VM <id> failed - <why>` (the last one)."""
    for line in reversed(lines):
        if match := _BACKUP_FAILED.search(line):
            return match["msg"]
    return ""
