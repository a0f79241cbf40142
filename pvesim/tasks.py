"""Proxmox tasks: UPIDs, background workers with log lines, TASK OK / TASK ERROR (pve-semantics §2)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .errors import TaskCancelled, TaskError

if TYPE_CHECKING:
    from .state import Cluster

_pid_counter = itertools.count(0x3A000 + os.getpid() % 0x1000)


def make_upid(node: str, type_: str, id_: str, user: str, starttime: int, pid: int, pstart: int) -> str:
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type_}:{id_}:{user}:"


@dataclass
class Task:
    upid: str
    node: str
    type: str
    id: str
    user: str  # authid: user@realm or user@realm!token
    pid: int
    pstart: int
    starttime: int
    lines: list[str] = field(default_factory=list)
    status: str = "running"  # running | stopped
    exitstatus: str | None = None
    endtime: int | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def userid(self) -> str:
        return self.user.split("!", 1)[0]

    @property
    def tokenid(self) -> str | None:
        return self.user.split("!", 1)[1] if "!" in self.user else None

    def status_dict(self) -> dict:
        out = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.userid,
            "status": self.status,
        }
        if self.tokenid:
            out["tokenid"] = self.tokenid
        if self.status == "stopped":
            out["exitstatus"] = self.exitstatus
        return out

    def list_dict(self) -> dict:
        out = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.userid,
        }
        if self.tokenid:
            out["tokenid"] = self.tokenid
        if self.status == "stopped":
            out["endtime"] = self.endtime
            out["status"] = self.exitstatus
        else:
            out["status"] = "RUNNING"
        return out


class TaskContext:
    """What a worker function gets: log, scaled sleep, failure and progress helpers."""

    def __init__(self, cluster: "Cluster", task: Task, injected_failure: str | None):
        self.cluster = cluster
        self.task = task
        self._injected = injected_failure

    def log(self, line: str) -> None:
        with self.cluster.lock:
            self.task.lines.append(line)

    def sleep(self, sim_seconds: float) -> None:
        """Wait simulated time; raises TaskCancelled when stopped, TaskError when a failure was injected."""
        self.checkpoint()
        if self.cluster.clock.sleep(sim_seconds, self.task.stop_requested):
            raise TaskCancelled()
        self.checkpoint()

    def checkpoint(self) -> None:
        if self.task.stop_requested.is_set():
            raise TaskCancelled()
        if self._injected is not None:
            message, self._injected = self._injected, None
            raise TaskError(message)
        node = self.cluster.nodes.get(self.task.node)
        if node is not None and not node.online:
            # The node died under the task: the worker process is gone with it.
            raise TaskCancelled()

    def progress(self, total_seconds: float, steps: int, line: Callable[[int, int], str]) -> None:
        """Sleep `total_seconds` in `steps` pieces, logging line(i, steps) after each."""
        for i in range(1, steps + 1):
            self.sleep(total_seconds / steps)
            self.log(line(i, steps))


Worker = Callable[[TaskContext], None]


class TaskManager:
    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster
        self.tasks: dict[str, Task] = {}
        self.order: list[Task] = []

    def start(self, *, node: str, type: str, id: str | int, user: str, worker: Worker,
              on_finish: Callable[[Task], None] | None = None) -> str:
        """Create a task and run `worker` in a thread; returns its UPID at once."""
        pid = next(_pid_counter)
        now = int(time.time())
        pstart = int(time.monotonic() * 100) & 0xFFFFFFFF
        upid = make_upid(node, type, str(id), user, now, pid, pstart)
        task = Task(upid=upid, node=node, type=type, id=str(id), user=user, pid=pid, pstart=pstart, starttime=now)
        injected = self.cluster.faults.take_task_failure(type)
        with self.cluster.lock:
            self.tasks[upid] = task
            self.order.append(task)
            if len(self.order) > 5000:  # keep the archive bounded like a real task index
                old = self.order.pop(0)
                self.tasks.pop(old.upid, None)
        ctx = TaskContext(self.cluster, task, injected)
        thread = threading.Thread(target=self._run, args=(ctx, worker, on_finish), name=f"task-{type}-{id}", daemon=True)
        thread.start()
        return upid

    def _run(self, ctx: TaskContext, worker: Worker, on_finish) -> None:
        task = ctx.task
        try:
            worker(ctx)
            status = "OK"
        except TaskCancelled:
            status = "interrupted by signal" if task.stop_requested.is_set() else "unexpected status"
            ctx.log("received interrupt" if task.stop_requested.is_set() else "task died with its node")
        except TaskError as exc:
            status = str(exc).replace("\n", " ").strip()
            ctx.log(f"TASK ERROR: {status}")
        except Exception as exc:  # a bug in the simulator must still end the task
            status = f"internal simulator error: {exc}"
            ctx.log(f"TASK ERROR: {status}")
        else:
            ctx.log("TASK OK")
        with self.cluster.lock:
            task.status = "stopped"
            task.exitstatus = status
            task.endtime = int(time.time())
        if on_finish is not None:
            try:
                on_finish(task)
            except Exception:
                pass

    def get(self, upid: str) -> Task | None:
        return self.tasks.get(upid)

    def sync_task(self, *, node: str, type: str, id: str | int, user: str, lines: list[str], error: str | None = None) -> str:
        """Record a task that finished at once (forked work of a sync call)."""
        def worker(t: TaskContext):
            for line in lines:
                t.log(line)
            if error:
                raise TaskError(error)
        return self.start(node=node, type=type, id=id, user=user, worker=worker)
