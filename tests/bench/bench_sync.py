"""Benchmark of the inventory sync. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_sync.py -s -o norecursedirs=     (or `make bench`)

1. pvesim --scale 50,10000 (time scale 1): first full sync (all registered handlers: nodes,
   storage, guests...), Proxmox calls per cycle, rows written and time of a no-change cycle.
2. Proxmox calls per minute, counted by pvesim's /pvesim/counters, with 0, 1, 10 and 100 open
   dashboards (websocket clients subscribed to cluster-<id> on the real ASGI server), while a
   real Celery worker runs the beat-driven sync (nodes.cluster_sync_due every 2 s, as in settings).
   BENCH_WINDOW (seconds, default 60) sets each window.
3. The same with high availability configured (issue 13: the sync's Proxmox calls per cycle stay
   constant with HA enabled): pvesim's demo (its replication job, Ceph), measured once with no HA
   resource or rule and once with every guest under HA (7 HA guests), each idle and watched (an
   open dashboard, HA page and guest HA panel). Per window: the sync's calls (its cycles counted by
   GET /cluster/resources), calls per cycle, and the HA refresh's own calls (beat task
   ha.ha_refresh_all every HA_REFRESH_INTERVAL, default 60 s), which do not depend on viewers.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.db import connection

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

WINDOW = float(os.environ.get("BENCH_WINDOW", "60"))


class WriteCounter:
    def __init__(self):
        self.statements = 0
        self.rows = 0
        self.by_table: dict[str, int] = {}

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        verb = sql.lstrip().split(" ", 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            self.statements += 1
            rows = max(context["cursor"].rowcount, 0)
            self.rows += rows
            table = next((w.strip('"') for w in sql.split() if w.strip('"').count("_") and w.startswith('"')), "?")
            self.by_table[table] = self.by_table.get(table, 0) + rows
        return result


def register(sim, user, name):
    from apps.nodes.services import cluster_create

    return cluster_create(user=user, name=name, api_url=sim.url, token_id=sim.token_id,
                          token_secret=sim.token_secret, tls_mode="pin", fingerprint=sim.fingerprint)


@pytest.mark.timeout(1800)
def test_bench_sync_at_scale(operator):
    from pvesim.testing import PvesimProcess

    from apps.nodes import sync

    with PvesimProcess(scale="50,10000", time_scale=1.0, startup_timeout=180) as sim:
        cluster = register(sim, operator, "scale")
        t0 = time.monotonic()
        counter = WriteCounter()
        with connection.execute_wrapper(counter):
            first = sync.run_cycle(cluster.pk)
        first_time = time.monotonic() - t0
        assert first.ok, first.error
        print(f"\n[scale 50 nodes / 10000 guests] first full sync: {first_time:.2f}s "
              f"(Proxmox {sum(first.calls.values())} calls {first.calls}; changed {first.changed}; "
              f"{counter.rows} rows written)")
        for i in range(3):
            counter = WriteCounter()
            t0 = time.monotonic()
            with connection.execute_wrapper(counter):
                result = sync.run_cycle(cluster.pk)
            elapsed = time.monotonic() - t0
            print(f"[scale] no-change cycle {i + 1}: {elapsed:.2f}s, Proxmox calls {sum(result.calls.values())}, "
                  f"objects changed {result.changed}, rows written {counter.rows} in {counter.statements} "
                  f"statements {counter.by_table}")
            time.sleep(2)


def _viewer(asgi_server, cookie, group, stop, ready):
    """One open dashboard: subscribes, drains pushes, and reconnects when the socket drops (as
    htmx's ws extension does)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    first = True
    while not stop.is_set():
        try:
            with connect(f"{asgi_server.ws_url}/ws/live/?groups={group}", additional_headers={"Cookie": cookie},
                         open_timeout=30) as ws:
                if first:
                    ready.release()
                    first = False
                while not stop.is_set():
                    try:
                        ws.recv(timeout=1)
                    except TimeoutError:
                        pass
        except (ConnectionClosed, OSError):
            stop.wait(1.0)


@pytest.mark.timeout(1800)
def test_bench_calls_per_minute_by_viewers(pvesim, operator, client, celery_worker, asgi_server):
    from apps.nodes import presence
    from apps.nodes.tasks import cluster_sync_due

    pvesim.reset()
    pvesim.admin("POST", "/time-scale", scale=1)
    cluster = register(pvesim, operator, "viewers")
    time.sleep(3)  # first sync done; idle schedule (next in 60 s) starts
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    stop_beat = threading.Event()

    def beat():
        while not stop_beat.is_set():
            cluster_sync_due.delay()
            stop_beat.wait(2.0)

    beat_thread = threading.Thread(target=beat, daemon=True)
    beat_thread.start()
    print(f"\n[viewers] window {WINDOW:.0f}s each (SYNC_INTERVAL_ACTIVE 5 s, IDLE 60 s)")
    try:
        for viewers in (0, 1, 10, 100):
            stop, ready = threading.Event(), threading.Semaphore(0)
            threads = [threading.Thread(target=_viewer, args=(asgi_server, cookie, cluster.live_group, stop, ready),
                                        daemon=True) for _ in range(viewers)]
            for t in threads:
                t.start()
            for _ in range(viewers):
                ready.acquire(timeout=60)
            time.sleep(1.5)
            watching = presence.watcher_count(cluster.live_group)
            pvesim.admin("DELETE", "/counters")
            time.sleep(WINDOW)
            counters = pvesim.counters()
            stop.set()
            for t in threads:
                t.join(10)
            per_minute = counters["total"] * 60.0 / WINDOW
            paths = {c["path"]: c["count"] for c in counters["requests"]}
            print(f"[viewers] {viewers:>3} open dashboards (watchers counted: {watching:>3}): "
                  f"{per_minute:5.1f} Proxmox calls/min {paths}")
            deadline = time.monotonic() + 45  # closed sockets leave at once; a lost one expires (30 s)
            while presence.watcher_count(cluster.live_group) and time.monotonic() < deadline:
                time.sleep(1)
    finally:
        stop_beat.set()
        beat_thread.join(5)
        pvesim.admin("POST", "/time-scale", scale=20)


# The reads a sync cycle makes (apps.nodes.sync); everything else in a window is another task's.
SYNC_PATHS = {"GET /cluster/resources", "GET /cluster/status", "GET /cluster/ha/status/current"}
HA_REFRESH_PATHS = ("GET /cluster/ha/rules", "GET /cluster/replication", "GET /nodes/{node}/replication",
                    "GET /cluster/ceph/status", "GET /nodes/{node}/qemu/{vmid}/config",
                    "GET /nodes/{node}/lxc/{vmid}/config")
HA_GUESTS = ["vm:100", "vm:101", "vm:102", "vm:103", "vm:104", "ct:200", "ct:201"]  # every guest but the template


def _calls(counters: dict) -> dict[str, int]:
    return {f"{c['method']} {c['path']}": c["count"] for c in counters["requests"]}


@pytest.mark.timeout(3600)
def test_bench_calls_per_minute_with_ha(pvesim, operator, client, celery_worker, asgi_server):
    from apps.guests.models import Guest
    from apps.ha.models import HaResource
    from apps.ha.tasks import ha_refresh_all
    from apps.nodes import presence
    from apps.nodes.tasks import cluster_sync_due
    from apps.proxmox import ha as pve_ha
    from tests.fixtures import pve_client

    refresh_every = float(os.environ.get("HA_REFRESH_INTERVAL", "60"))
    pvesim.reset()
    pvesim.admin("POST", "/time-scale", scale=1)
    pve = pve_client(pvesim)
    cluster = register(pvesim, operator, "ha-bench")
    time.sleep(3)  # first sync done
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    stop_beat = threading.Event()

    def beat():
        last_refresh = 0.0
        while not stop_beat.is_set():
            cluster_sync_due.delay()
            if time.monotonic() - last_refresh >= refresh_every:
                ha_refresh_all.delay()
                last_refresh = time.monotonic()
            stop_beat.wait(2.0)

    def configure(ha: bool) -> int:
        if ha:
            for sid in HA_GUESTS:
                pve_ha.resource_add(pve, sid, state="started")
        else:
            for rule in pve_ha.rules(pve):
                pve_ha.rule_delete(pve, rule["rule"])
            for item in pve_ha.resources(pve):
                pve_ha.resource_remove(pve, item["sid"])
        want = len(HA_GUESTS) if ha else 0
        deadline = time.monotonic() + 120  # the CRM takes them at its rounds; the sync sees them then
        while time.monotonic() < deadline:
            settled = {s.state for s in (pve_ha.status(pve).services.values())}
            if len(pve_ha.resources(pve)) == want and settled <= {"started"} and \
                    HaResource.objects.filter(cluster=cluster).count() == want:
                break
            time.sleep(2)
        return len(pve_ha.resources(pve))

    beat_thread = threading.Thread(target=beat, daemon=True)
    beat_thread.start()
    guest = Guest.objects.get(cluster=cluster, vmid=100)
    watched_groups = [cluster.live_group, f"ha-{cluster.pk}", f"haguest-{guest.pk}.manage"]
    print(f"\n[ha] window {WINDOW:.0f}s each (SYNC_INTERVAL_ACTIVE 5 s, IDLE 60 s; HA refresh every "
          f"{refresh_every:.0f} s)")
    try:
        for ha in (False, True):
            ha_guests = configure(ha)
            time.sleep(refresh_every + 5)  # a first HA refresh reads what is new (configs of new HA guests)
            states = sorted(HaResource.objects.filter(cluster=cluster).values_list("state", flat=True))
            for label, groups in (("idle", []), ("watched", watched_groups)):
                stop, ready = threading.Event(), threading.Semaphore(0)
                threads = [threading.Thread(target=_viewer, args=(asgi_server, cookie, group, stop, ready),
                                            daemon=True) for group in groups]
                for t in threads:
                    t.start()
                for _ in groups:
                    ready.acquire(timeout=60)
                time.sleep(1.5)
                watching = presence.watcher_count(cluster.live_group)
                pvesim.admin("DELETE", "/counters")
                time.sleep(WINDOW)
                calls = _calls(pvesim.counters())
                stop.set()
                for t in threads:
                    t.join(10)
                scale = 60.0 / WINDOW
                sync_calls = {k: v for k, v in calls.items() if k in SYNC_PATHS}
                refresh_calls = {k: v for k, v in calls.items() if k in HA_REFRESH_PATHS}
                other = {k: v for k, v in calls.items() if k not in SYNC_PATHS and k not in HA_REFRESH_PATHS}
                cycles = calls.get("GET /cluster/resources", 0)
                per_cycle = sum(sync_calls.values()) / cycles if cycles else 0.0
                print(f"[ha] {ha_guests} HA guests {label:>7} (states {','.join(sorted(set(states))) or '-'}; "
                      f"cluster watchers {watching}): "
                      f"sync {sum(sync_calls.values()) * scale:5.1f} calls/min in {cycles * scale:4.1f} cycles "
                      f"({per_cycle:.2f} per cycle) {sync_calls}; HA refresh {sum(refresh_calls.values()) * scale:4.1f}"
                      f"/min {refresh_calls}; other {other}; total {sum(calls.values()) * scale:5.1f}/min")
                deadline = time.monotonic() + 45
                while presence.watcher_count(cluster.live_group) and time.monotonic() < deadline:
                    time.sleep(1)
    finally:
        stop_beat.set()
        beat_thread.join(5)
        pve.close()
        pvesim.admin("POST", "/time-scale", scale=20)
