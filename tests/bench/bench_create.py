"""Benchmark: 200 guest creations requested at once through the API. Prints figures; no time assertions.

    .venv/bin/pytest tests/bench/bench_create.py -s -o norecursedirs=      (or `make bench`)

pvesim at time scale BENCH_TIME_SCALE (default 30), one real Celery worker with BENCH_CONCURRENCY
threads (default 4) on the real Redis broker; BENCH_CREATES (default 200) POSTs to
/api/v1/guests/create-vm/ and /create-ct/ (half each, automatic placement) from 16 client threads.
Then: every operation finished, every guest exists exactly once on pvesim (none lost, none doubled),
no reservation left; and the pipeline's time over pvesim's own task time (UPID start/end times from
the node task lists, 1 s resolution) against the operation's created/started/finished stamps.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

CREATES = int(os.environ.get("BENCH_CREATES", "200"))
TIME_SCALE = float(os.environ.get("BENCH_TIME_SCALE", "30"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
ISO = "nfs-store:iso/debian-13.1.0-amd64-netinst.iso"
VZTMPL = "nfs-store:vztmpl/alpine-3.22-default_20250617_amd64.tar.xz"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def line(name, values):
    return (f"{name:<34} mean {statistics.mean(values):7.3f}s  p50 {pct(values, 50):7.3f}s  "
            f"p95 {pct(values, 95):7.3f}s  max {max(values):7.3f}s")


def test_bench_200_creates_at_once(operator, settings, django_db_blocker):
    import celery.contrib.testing.tasks  # noqa: F401
    from celery.contrib.testing.worker import start_worker
    from django.db import connection
    from pvesim.testing import PvesimProcess
    from rest_framework.test import APIClient

    from apps.guests.models import VmidReservation
    from apps.nodes.models import Cluster
    from apps.nodes.services import cluster_client
    from apps.nodes.sync import run_cycle
    from apps.operations.clients import set_client_factory
    from apps.operations.models import Operation
    from apps.proxmox import parse_upid
    from apps.storage.models import Storage
    from apps.storage.services import storage_content_refresh
    from datacenter.celery import app

    settings.OPERATIONS_POLL_INTERVAL = 0.1
    with PvesimProcess(time_scale=TIME_SCALE) as sim, \
            start_worker(app, pool="threads", concurrency=CONCURRENCY, perform_ping_check=True,
                         ping_task_timeout=30, shutdown_timeout=30, loglevel="WARNING"):
        cluster = Cluster.objects.create(name="bench", api_url=sim.url, token_id=sim.token_id,
                                         token_secret=sim.token_secret, tls_mode="pin", fingerprint=sim.fingerprint)
        previous = set_client_factory(lambda cid: cluster_client(Cluster.objects.get(pk=cid)))
        try:
            assert run_cycle(cluster.pk).ok
            for storage in Storage.objects.filter(cluster=cluster):
                storage_content_refresh(storage=storage)
            time.sleep(1)  # let the first sync's own content refresh tasks drain

            def request(i: int):
                from django.db import connections

                client = APIClient()
                client.force_authenticate(operator)
                if i % 2:
                    url, body = "/api/v1/guests/create-ct/", {
                        "ostemplate": VZTMPL, "hostname": f"bench-ct-{i}", "password": "bench-password",
                        "storage": "ceph-rbd", "disk_size": 2, "memory": 256, "swap": 0}
                else:
                    url, body = "/api/v1/guests/create-vm/", {
                        "source": "iso", "iso": ISO, "name": f"bench-vm-{i}", "storage": "ceph-rbd",
                        "disk_size": 4, "memory": 512, "cores": 1}
                t0 = time.monotonic()
                response = client.post(url, body, format="json")
                elapsed = time.monotonic() - t0
                connections.close_all()
                return response.status_code, response.json(), elapsed

            began = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(request, range(CREATES)))
            accepted_in = time.monotonic() - began
            codes = [a[0] for a in answers]
            print(f"\n[bench] {CREATES} create requests answered in {accepted_in:.2f}s: "
                  f"{codes.count(202)} accepted, others {[(a[0], a[1]) for a in answers if a[0] != 202][:3]}")
            ids = [a[1]["id"] for a in answers if a[0] == 202]
            deadline = time.monotonic() + 900
            while Operation.objects.filter(pk__in=ids, status__in=["pending", "running"]).exists():
                assert time.monotonic() < deadline, "operations did not finish within 15 minutes"
                time.sleep(0.5)
            all_done = time.monotonic() - began
            ops = list(Operation.objects.filter(pk__in=ids))
            by_status = {}
            for o in ops:
                by_status[o.status] = by_status.get(o.status, 0) + 1
            print(f"[bench] all {len(ops)} operations final after {all_done:.1f}s wall clock "
                  f"({len(ops) / all_done:.1f} creates/s): {by_status}")
            failed = [o.error for o in ops if o.status != "succeeded"][:3]
            if failed:
                print(f"[bench] first failures: {failed}")

            api = cluster_client(cluster)
            guests = [g for g in api.get("cluster/resources", type="vm") if str(g.get("name", "")).startswith("bench-")]
            names = [g["name"] for g in guests]
            vmids = [int(g["vmid"]) for g in guests]
            print(f"[bench] on pvesim: {len(guests)} bench guests, {len(set(names))} distinct names, "
                  f"{len(set(vmids))} distinct vmids; reservations left: "
                  f"{VmidReservation.objects.filter(cluster=cluster).count()}")
            assert len(guests) == len(set(names)) == by_status.get("succeeded", 0), "lost or doubled guests"
            assert not VmidReservation.objects.filter(cluster=cluster).exists()

            # Proxmox's own time per operation: sum of its tasks' (endtime - starttime).
            tasks = {}
            for node in ("pve1", "pve2", "pve3"):
                for t in api.get(f"nodes/{node}/tasks", limit=5000, source="archive"):
                    tasks[t["upid"]] = t
            task_time, queue_wait, pipeline, total, overhead = [], [], [], [], []
            for o in ops:
                if o.status != "succeeded":
                    continue
                spent = sum(max(0, tasks[u]["endtime"] - tasks[u]["starttime"]) for u in o.upids if u in tasks)
                task_time.append(spent)
                queue_wait.append((o.started - o.created).total_seconds())
                pipeline.append((o.finished - o.started).total_seconds())
                total.append((o.finished - o.created).total_seconds())
                overhead.append((o.finished - o.started).total_seconds() - spent)
            kinds = {}
            for o in ops:
                for u in o.upids:
                    kinds[parse_upid(u).type] = kinds.get(parse_upid(u).type, 0) + 1
            print(f"[bench] Proxmox tasks run: {kinds} (time scale {TIME_SCALE}, worker threads {CONCURRENCY})")
            print("[bench] " + line("API answer (202)", [a[2] for a in answers]))
            print("[bench] " + line("queued (created -> started)", queue_wait))
            print("[bench] " + line("running (started -> finished)", pipeline))
            print("[bench] " + line("pvesim task time (UPID end-start)", task_time))
            print("[bench] " + line("pipeline overhead (running - task)", overhead))
            print("[bench] " + line("end to end (created -> finished)", total))
            api.close()
        finally:
            set_client_factory(previous)
            connection.close()
