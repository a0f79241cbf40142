"""Benchmark of the inventory sync. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_sync.py -s -o norecursedirs=     (or `make bench`)

1. pvesim --scale 50,10000 (time scale 1): first full sync (all registered handlers: nodes,
   storage, guests...), Proxmox calls per cycle, rows written and time of a no-change cycle.
2. Proxmox calls per minute, counted by pvesim's /pvesim/counters, with 0, 1, 10 and 100 open
   dashboards (websocket clients subscribed to cluster-<id> on the real ASGI server), while a
   real Celery worker runs the beat-driven sync (nodes.cluster_sync_due every 2 s, as in settings).
   BENCH_WINDOW (seconds, default 60) sets each window.
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
