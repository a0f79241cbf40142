"""Memory soak (issue 11): does any process grow over an hour of syncing? Prints figures; no
assertions on time or size.

    BENCH_SOAK_SECONDS=3600 .venv/bin/pytest tests/bench/bench_soak.py -s -o norecursedirs= \
        -o "python_files=bench_*.py"                                        (or `make soak`)

The processes `make demo` runs, as bench_clusters.py starts them (one web process, the operations
worker, the sync worker, beat; this test's PostgreSQL, a private redis-server), with
BENCH_CLUSTERS (20) pvesim clusters of BENCH_CLUSTER_SCALE (3 nodes, 500 guests: 10,000 guests in
all) at time scale 10, so usage moves and rows are written every cycle. One websocket watches every
cluster (the active pace: a cycle every 5 s each), and every BENCH_SOAK_RENAME seconds (30) a guest
of a rotating cluster is renamed behind the portal's back, so pushes and writes keep flowing.

Every BENCH_SOAK_SAMPLE seconds (60) the resident memory of each process (a prefork worker with its
pool) is sampled. Printed: the samples, each process's median of the first and of the last fifth of
the run after BENCH_SOAK_WARMUP seconds (300: caches fill, pools open), the growth between them, and
the sync cycles and Proxmox calls made.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from bench_clusters import CLUSTERS, SCALE, rss_mb  # tests/bench is on sys.path when pytest collects it
from live_pushes import Subscriber

from tests.core.test_topology import DEFAULT_QUEUE, SYNC_QUEUE, Topology

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "3600"))
SAMPLE = float(os.environ.get("BENCH_SOAK_SAMPLE", "60"))
WARMUP = float(os.environ.get("BENCH_SOAK_WARMUP", "300"))
RENAME = float(os.environ.get("BENCH_SOAK_RENAME", "30"))


def growth_line(name: str, samples: list[tuple[float, float]]) -> str:
    """First and last fifth (after the warm-up) of one process's samples, as medians."""
    kept = [mb for at, mb in samples if at >= WARMUP] or [mb for _, mb in samples]
    fifth = max(1, len(kept) // 5)
    first, last = statistics.median(kept[:fifth]), statistics.median(kept[-fifth:])
    return (f"[soak] {name}: {first:.0f} MB -> {last:.0f} MB ({last - first:+.0f} MB, "
            f"{100.0 * (last - first) / first:+.1f} %), min {min(kept):.0f}, max {max(kept):.0f}")


@pytest.mark.timeout(int(SECONDS) + 1800)
def test_bench_memory_soak(operator):
    from pvesim.testing import PvesimProcess

    from apps.guests.models import Guest
    from apps.nodes.models import Cluster
    from apps.permissions.models import ApiToken
    from tests.fixtures import wait_for

    sims = [PvesimProcess(scale=SCALE, time_scale=10.0, startup_timeout=300) for _ in range(CLUSTERS)]
    topo = Topology()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.start(), sims))
        clusters = [Cluster.objects.create(name=f"soak-{i:02d}", api_url=s.url, token_id=s.token_id,
                                           token_secret=s.token_secret, tls_mode="pin", fingerprint=s.fingerprint)
                    for i, s in enumerate(sims)]
        _, token = ApiToken.objects.create(operator, name="soak")
        topo.start_redis()
        topo.start_web()
        topo.start_worker("-Q", DEFAULT_QUEUE, "-c", "2", name="worker")
        topo.start_worker("-Q", SYNC_QUEUE, "--pool", "threads", "-c", "8", name="sync-worker")
        topo.start_beat()
        topo.wait_ready()
        wait_for(lambda: all(topo.cycles(c.pk) >= 1 for c in clusters), timeout=900, interval=1)
        print(f"\n[soak] {CLUSTERS} clusters, {Guest.objects.count()} guests synced; soaking {SECONDS:.0f} s, "
              f"a sample every {SAMPLE:.0f} s")
        renamable = [Guest.objects.filter(cluster=c, type="qemu", template=False, lock="")
                     .select_related("node").order_by("vmid").first() for c in clusters]
        apis = [s.api() for s in sims]
        for s in sims:
            s.admin("DELETE", "/counters")
        cycles_before = sum(topo.cycles(c.pk) for c in clusters)
        samples: dict[str, list[tuple[float, float]]] = {p.name: [] for p in topo.procs}
        groups = ",".join(c.live_group for c in clusters)
        ws_url = f"ws://127.0.0.1:{topo.web_ports[0]}/ws/live/?groups={groups}&format=json"
        with Subscriber(ws_url, {"Authorization": f"Token {token}"}) as page:
            started = time.monotonic()
            next_sample = next_rename = started
            renames = 0
            while (now := time.monotonic()) - started < SECONDS:
                if now >= next_rename:
                    i = renames % len(clusters)
                    if renamable[i] is not None:
                        vm = renamable[i]
                        apis[i].nodes(vm.node.name).qemu(vm.vmid).config.put(name=f"soak-{renames:05d}")
                    renames += 1
                    next_rename += RENAME
                if now >= next_sample:
                    for p in topo.procs:
                        samples[p.name].append((now - started, rss_mb(p)))
                    line = ", ".join(f"{name} {values[-1][1]:.0f}" for name, values in samples.items())
                    print(f"[soak] {now - started:5.0f} s: {line} (MB)", flush=True)
                    next_sample += SAMPLE
                time.sleep(0.5)
            pushes = len(page.pushes)
        seconds = time.monotonic() - started
        cycles = sum(topo.cycles(c.pk) for c in clusters) - cycles_before
        calls = sum(s.counters()["total"] for s in sims)
        dead = [p.name for p in topo.procs if not p.alive]
        print(f"[soak] {seconds:.0f} s: {cycles} sync cycles, {calls} Proxmox calls "
              f"({calls * 60.0 / seconds / len(clusters):.1f} a minute per cluster), {renames} renames, "
              f"{pushes} pushes received; processes that died: {dead or 'none'}")
        for name, values in samples.items():
            print(growth_line(name, values))
    finally:
        topo.stop()
        for s in sims:
            s.stop()
