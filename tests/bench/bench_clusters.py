"""Benchmark of many clusters (issue 11): 20 pvesim instances registered, the processes `make demo`
runs. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_clusters.py -s -o norecursedirs=     (or `make bench`)

BENCH_CLUSTERS (default 20) pvesim processes, each `--scale BENCH_CLUSTER_SCALE` (default 3,500:
3 nodes, 500 guests, so 10,000 guests in all), time scale 10. One web process (uvicorn), the
demo's workers (operations: `-Q celery`, prefork, 2; syncs: `-Q sync --pool threads -c 8`) and beat,
as separate processes on this test's PostgreSQL and a private redis-server (tests/core/test_topology.py).
One websocket client subscribes to every cluster (so each is watched: the active sync pace).

1. Proxmox calls per cluster per minute over BENCH_WINDOW seconds (default 60), from each pvesim's
   counters: min / median / max over the clusters, and the paths of one.
2. Lag from a change on a fast cluster (a guest renamed through its Proxmox API) to its push on the
   socket, BENCH_CHANGES times (default 10), and the queue wait of operations on it (created to
   started), first with every cluster healthy, then with one cluster slow (BENCH_SLOW_LATENCY, default
   8 s added to each of its Proxmox requests) and one unreachable (its pvesim stopped, its port held by
   a listener that never answers: each call waits out PROXMOX_TIMEOUT). Calls per minute of the
   fast clusters again, and of the slow and unreachable ones.
3. Resident memory (RSS) of the web, worker (with its pool processes) and beat processes, after
   the first sync and at the end.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from live_pushes import Subscriber, guest_push  # tests/bench is on sys.path when pytest collects it

from tests.core.test_topology import DEFAULT_QUEUE, SYNC_QUEUE, Topology

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

CLUSTERS = int(os.environ.get("BENCH_CLUSTERS", "20"))
SCALE = os.environ.get("BENCH_CLUSTER_SCALE", "3,500")
WINDOW = float(os.environ.get("BENCH_WINDOW", "60"))
CHANGES = int(os.environ.get("BENCH_CHANGES", "10"))
SLOW_LATENCY = float(os.environ.get("BENCH_SLOW_LATENCY", "8"))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def summary(values) -> str:
    if not values:
        return "none"
    return (f"p50 {statistics.median(values):.2f} s, p95 {pct(values, 95):.2f} s, max {max(values):.2f} s "
            f"(n={len(values)})")


class BlackHole:
    """A listener that accepts connections and never answers (an unreachable Proxmox that does not
    refuse: every call waits out its timeout)."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.5)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


def rss_mb(proc) -> float:
    """Resident memory of a process and its children (a prefork worker's pool), MB."""
    import psutil

    try:
        main = psutil.Process(proc.proc.pid)
        return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2 ** 20
    except psutil.NoSuchProcess:
        return 0.0


def memory_line(topo: Topology, label: str) -> str:
    parts = [f"{p.name} {rss_mb(p):.0f} MB" for p in topo.procs]
    return f"[clusters] resident memory {label}: " + ", ".join(parts)


def calls_per_minute(sims, seconds: float) -> list[float]:
    return [s.counters()["total"] * 60.0 / seconds for s in sims]


def spread(values) -> str:
    return f"min {min(values):.1f}, median {statistics.median(values):.1f}, max {max(values):.1f}"


@pytest.mark.timeout(3600)
def test_bench_many_clusters(operator):
    from pvesim.testing import PvesimProcess

    from apps.guests.models import Guest
    from apps.nodes.models import Cluster
    from apps.operations.models import Operation
    from apps.permissions.models import ApiToken
    from tests.fixtures import wait_for

    sims = [PvesimProcess(scale=SCALE, time_scale=10.0, startup_timeout=300) for _ in range(CLUSTERS)]
    topo = Topology()
    hole = None
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.start(), sims))
        print(f"\n[clusters] {CLUSTERS} pvesim --scale {SCALE} started in {time.monotonic() - t0:.0f} s")
        clusters = [Cluster.objects.create(name=f"bench-{i:02d}", api_url=s.url, token_id=s.token_id,
                                           token_secret=s.token_secret, tls_mode="pin", fingerprint=s.fingerprint)
                    for i, s in enumerate(sims)]
        _, token = ApiToken.objects.create(operator, name="bench")
        topo.start_redis()
        topo.start_web()
        topo.start_worker("-Q", DEFAULT_QUEUE, "-c", "2", name="worker")
        topo.start_worker("-Q", SYNC_QUEUE, "--pool", "threads", "-c", "8", name="sync-worker")
        topo.start_beat()
        topo.wait_ready()
        groups = ",".join(c.live_group for c in clusters)
        ws_url = f"ws://127.0.0.1:{topo.web_ports[0]}/ws/live/?groups={groups}&format=json"
        t0 = time.monotonic()
        wait_for(lambda: all(topo.cycles(c.pk) >= 1 for c in clusters), timeout=900, interval=1)
        guests = Guest.objects.count()
        print(f"[clusters] first sync of all {CLUSTERS} clusters ({guests} guests) by one sync worker: "
              f"{time.monotonic() - t0:.0f} s")
        print(memory_line(topo, "after the first sync"))

        fast, slow, dead = clusters[0], clusters[1], clusters[2]
        fast_sim, slow_sim, dead_sim = sims[0], sims[1], sims[2]
        healthy = [s for s in sims if s not in (slow_sim, dead_sim)]
        qemu = Guest.objects.filter(cluster=fast, type="qemu", template=False, lock="", hastate="") \
            .select_related("node").order_by("vmid")
        vm, target = qemu[0], qemu[1]  # renamed behind the portal's back; started and stopped through it
        pve = fast_sim.api()
        rng = random.Random(11)

        def measure(label: str, tag: str, window_sims, extra: dict) -> None:
            for s in window_sims:
                s.admin("DELETE", "/counters")
            started = time.monotonic()
            lags, missed = [], 0
            for i in range(CHANGES):
                time.sleep(rng.uniform(0.5, 5.5))  # anywhere in the watched 5 s cycle
                name = f"{tag}-{i:02d}"  # a DNS name
                pve.nodes(vm.node.name).qemu(vm.vmid).config.put(name=name)
                changed_at = time.time()
                arrived = page.first(changed_at, guest_push(vm.pk, name), timeout=60)
                if arrived is None:
                    missed += 1
                else:
                    lags.append(arrived - changed_at)
            waits = []
            for _ in range(4):
                action = "start" if Guest.objects.get(pk=target.pk).status == "stopped" else "stop"
                op = topo_post(f"/api/v1/guests/{target.pk}/{action}/")
                done = wait_for(lambda: (o := Operation.objects.get(pk=op)) and not o.is_active and o, timeout=180)
                if done.started:
                    waits.append((done.started - done.created).total_seconds())
            rest = WINDOW - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            seconds = time.monotonic() - started
            quiet = [s for s in window_sims if s is not fast_sim]
            print(f"[clusters] {label}: lag from a change on a fast cluster to its push: {summary(lags)}; "
                  f"{missed} not pushed within 60 s")
            print(f"[clusters] {label}: operation queue wait (created to started) on it: {summary(waits)}")
            print(f"[clusters] {label}: Proxmox calls per minute per watched quiet cluster ({len(quiet)}, "
                  f"{seconds:.0f} s): {spread(calls_per_minute(quiet, seconds))}; the fast one (renames and "
                  f"operations included): {calls_per_minute([fast_sim], seconds)[0]:.1f}")
            paths = {c["path"]: round(c["count"] * 60.0 / seconds, 1)
                     for c in quiet[0].counters()["requests"] if c["count"]}
            print(f"[clusters] {label}: one quiet cluster's calls per minute by path: {paths}")
            for name, value in extra.items():
                print(f"[clusters] {label}: {name}: {value()}")

        def topo_post(path: str) -> str:
            import requests

            response = requests.post(f"{topo.url(0)}{path}", json={}, timeout=30,
                                     headers={"Authorization": f"Token {token}"})
            assert response.status_code == 202, response.text[:500]
            return response.json()["id"]

        with Subscriber(ws_url, {"Authorization": f"Token {token}"}) as page:
            time.sleep(8)  # watched: the active pace has started
            measure("all healthy", "healthy", healthy, {})

            slow_sim.admin("POST", "/faults/latency", seconds=SLOW_LATENCY)
            dead_port = dead_sim.port_number
            dead_sim.stop()
            hole = BlackHole(dead_port)
            slow_sim.admin("DELETE", "/counters")
            slow_started = time.monotonic()
            dead_before = topo.cycles(dead.pk)
            measure(f"one cluster slow (+{SLOW_LATENCY:.0f} s a call), one unreachable", "faults", healthy, {
                "the slow cluster's Proxmox calls per minute": lambda: round(
                    slow_sim.counters()["total"] * 60.0 / (time.monotonic() - slow_started), 1),
                "the unreachable cluster's sync attempts": lambda: (
                    f"{topo.cycles(dead.pk) - dead_before} "
                    f"(status {Cluster.objects.get(pk=dead.pk).status}, backed off)"),
            })
        print(memory_line(topo, "at the end"))
    finally:
        if hole is not None:
            hole.close()
        topo.stop()
        for s in sims:
            s.stop()
