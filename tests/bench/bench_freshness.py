"""Benchmark of freshness (issue 11): how long a change takes to reach an open page. Prints figures;
no assertions on time.

    .venv/bin/pytest tests/bench/bench_freshness.py -s -o norecursedirs=     (or `make bench`)

The demo pvesim at time scale 1, a real Celery worker and the real ASGI server; a thread plays
Celery beat (nodes.cluster_sync_due every 2 s, as in settings). One websocket subscriber of
`cluster-<id>` (an open dashboard; JSON frames) receives the pushes.

1. Outside the portal: BENCH_CHANGES (default 20) renames of a guest through the Proxmox API (a
   config PUT: no task, so the change is done when the call returns), each at a random point of the
   sync cycle; the time from the call's return to the first push naming the new name. p50/p95/max,
   and the Proxmox calls a minute the sync made meanwhile (pvesim's counters, the PUTs left out).
2. Through the portal: BENCH_OPERATIONS (default 10) power actions (start, stop in turn) through
   the REST API; the time from the moment the worker saw the Proxmox task end (its closing
   `TASK OK` log line, saved as an event) to the first push of the guest's row after it. The
   worker sees a task end at most OPERATIONS_POLL_INTERVAL (1 s) after Proxmox ends it.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time

import pytest
from live_pushes import Subscriber, guest_push  # tests/bench is on sys.path when pytest collects it

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

CHANGES = int(os.environ.get("BENCH_CHANGES", "20"))
OPERATIONS = int(os.environ.get("BENCH_OPERATIONS", "10"))
SYNC_PATHS = ("/cluster/resources", "/cluster/status", "/cluster/ha/status/current")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def summary(values) -> str:
    return (f"p50 {statistics.median(values):.2f} s, p95 {pct(values, 95):.2f} s, max {max(values):.2f} s "
            f"(n={len(values)})")


@pytest.mark.timeout(1800)
def test_bench_freshness(pvesim, operator, client, api, celery_worker, asgi_server):
    from apps.guests.models import Guest
    from apps.nodes.services import cluster_create
    from apps.nodes.tasks import cluster_sync_due
    from apps.operations.models import Operation, OperationEvent

    from tests.fixtures import pve_client, wait_for

    pvesim.reset()
    pvesim.admin("POST", "/time-scale", scale=1)
    cluster = cluster_create(user=operator, name="fresh", api_url=pvesim.url, token_id=pvesim.token_id,
                             token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)
    wait_for(lambda: Guest.objects.filter(cluster=cluster).count() >= 8, timeout=60)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    stop_beat = threading.Event()

    def beat():
        while not stop_beat.is_set():
            cluster_sync_due.delay()
            stop_beat.wait(2.0)

    beat_thread = threading.Thread(target=beat, daemon=True)
    beat_thread.start()
    pve = pve_client(pvesim)
    rng = random.Random(11)
    try:
        with Subscriber(f"{asgi_server.ws_url}/ws/live/?groups={cluster.live_group}&format=json",
                        {"Cookie": cookie}) as page:
            time.sleep(8)  # watched: the active pace has started
            # 1. outside the portal
            vm = Guest.objects.get(cluster=cluster, vmid=102)
            node = vm.node.name
            pvesim.admin("DELETE", "/counters")
            started = time.monotonic()
            outside, missed = [], 0
            for i in range(CHANGES):
                time.sleep(rng.uniform(0.5, 5.5))  # anywhere in the 5 s cycle
                name = f"fresh-{i:02d}"
                pve.put(f"nodes/{node}/qemu/102/config", name=name)
                changed_at = time.time()
                arrived = page.first(changed_at, guest_push(vm.pk, name), timeout=30)
                if arrived is None:
                    missed += 1
                else:
                    outside.append(arrived - changed_at)
            minutes = (time.monotonic() - started) / 60
            counters = pvesim.counters()
            sync_calls = sum(c["count"] for c in counters["requests"] if c["path"] in SYNC_PATHS)
            paths = {c["path"]: c["count"] for c in counters["requests"] if c["path"] in SYNC_PATHS}
            print(f"\n[freshness] outside the portal (guest renamed by the Proxmox API, one open page): "
                  f"{summary(outside) if outside else 'no push'}; {missed} not pushed within 30 s; "
                  f"sync {sync_calls / minutes:.1f} Proxmox calls/min {paths}")

            # 2. through the portal
            target = Guest.objects.get(cluster=cluster, vmid=104)
            inside = []
            for i in range(OPERATIONS):
                action = "start" if Guest.objects.get(pk=target.pk).status == "stopped" else "stop"
                op = api.post(f"/api/v1/guests/{target.pk}/{action}/", {}, expect=202)
                done = wait_for(lambda: (o := Operation.objects.get(pk=op["id"])) and not o.is_active and o, timeout=60)
                assert done.status == "succeeded", done.error
                task_end = OperationEvent.objects.filter(operation_id=op["id"], message__startswith="TASK ") \
                    .order_by("-seq").values_list("created", flat=True).first()
                if task_end is None:
                    continue
                arrived = page.first(task_end.timestamp(), guest_push(target.pk), timeout=30)
                if arrived is not None:
                    inside.append(arrived - task_end.timestamp())
                time.sleep(rng.uniform(0.2, 1.0))
            print(f"[freshness] through the portal (power actions; from the worker seeing the task end to the "
                  f"guest row's push): {summary(inside) if inside else 'no push'}")
    finally:
        stop_beat.set()
        beat_thread.join(5)
        pve.close()
        pvesim.admin("POST", "/time-scale", scale=20)
