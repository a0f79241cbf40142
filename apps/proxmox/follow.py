"""Follow a Proxmox task to its end: status + new log lines by line number (pve-semantics §2.2)."""

from __future__ import annotations

import time
from typing import Callable

from .errors import ProxmoxTaskError

# Proxmox answers an empty log with this single placeholder line.
_EMPTY_LOG = {"n": 1, "t": "no content"}


def task_ok(exitstatus: str | None) -> bool:
    """`OK` and `WARNINGS: <n>` are successes; anything else is the error text."""
    return exitstatus == "OK" or (exitstatus or "").startswith("WARNINGS")


def read_new_lines(client, node: str, upid: str, start: int, *, page: int = 500) -> list[dict]:
    """All log lines after the first `start` ones, paging until the server has no more."""
    lines: list[dict] = []
    while True:
        chunk = client.task_log(node, upid, start=start + len(lines), limit=page)
        if start + len(lines) == 0 and chunk == [_EMPTY_LOG]:
            return []
        chunk = [line for line in chunk if line.get("n", 0) > start + len(lines)]
        lines.extend(chunk)
        if len(chunk) < page:
            return lines


def follow_task(client, node: str, upid: str, on_line: Callable[[int, str], None] | None = None, *,
                start: int = 0, poll: float = 1.0, on_poll: Callable[[dict], None] | None = None,
                raise_on_error: bool = False, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Poll `upid` until it stops; call `on_line(n, text)` once per log line, in order.

    `start` = lines already seen (to re-attach after a restart). The log is read after each
    status read, so once status says stopped the last read holds every line. `on_poll(status)`
    runs between polls and may raise to stop following. Returns the final status dict; with
    `raise_on_error` a failed exitstatus raises ProxmoxTaskError carrying Proxmox's text.
    """
    seen = start
    while True:
        status = client.task_status(node, upid)
        for line in read_new_lines(client, node, upid, seen):
            seen = line["n"]
            if on_line is not None:
                on_line(line["n"], line["t"])
        if status.get("status") == "stopped":
            exitstatus = status.get("exitstatus")
            if raise_on_error and not task_ok(exitstatus):
                raise ProxmoxTaskError(exitstatus or "unexpected status", upid=upid, exitstatus=exitstatus)
            return status
        if on_poll is not None:
            on_poll(status)
        sleep(poll)
