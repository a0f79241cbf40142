"""Benchmark of the list pages and API lists at scale. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_lists.py -s -o norecursedirs=     (or `make bench`)

pvesim --scale 50,10000 registered beside nothing else and synced once (10,000 guests, 50 nodes),
plus BENCH_ROWS (default 10000) operations, audit entries and backup volumes written in bulk. Each
list URL is asked BENCH_REQUESTS times (default 40, after 3 warm-ups) for a page of 100 by an
operator over HTTP from the real ASGI server (uvicorn, as served) while BENCH_VIEWERS (default 50)
websocket clients watch the cluster; p50/p95 and the SQL queries of one request (Django's test
client, same view) are printed, and the Proxmox calls that all of them made (pvesim's counters;
zero expected). BENCH_PROFILE=1 prints a pyinstrument profile of each URL (test client);
BENCH_URLS=guests,audit measures only the URLs containing one of those words.

The server keeps its database connection between requests, as served (settings: CONN_MAX_AGE 60;
tests run with 0 so their database can be dropped, which makes each request start a PostgreSQL
backend: a bare connect took 7-13 ms on the reference machine at load 7, and was within the noise at
load 3). BENCH_CONN_MAX_AGE=0 measures with a connection per request, as before. The load average of
the machine is printed before and after (the figures move with it).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
import uuid

import pytest
import requests
from bench_sync import _viewer  # tests/bench is on sys.path when pytest collects it
from django.db import connection

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "40"))
CONN_MAX_AGE = int(os.environ.get("BENCH_CONN_MAX_AGE", "60"))
ROWS = int(os.environ.get("BENCH_ROWS", "10000"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "50"))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def fill(cluster, operator):
    """Operations, audit entries and backups in bulk, ROWS of each (the sync wrote the guests)."""
    from apps.core.models import AuditEntry
    from apps.guests.models import Guest
    from apps.operations.models import Operation
    from apps.storage.models import Storage, StorageContent

    guests = list(Guest.objects.filter(cluster=cluster).values_list("pk", "vmid", "name")[:ROWS])
    Operation.objects.bulk_create(
        [Operation(id=uuid.uuid4(), kind="guest.start", title=f"Start {name}", target_type="guests.guest",
                   target_id=str(pk), target_repr=name, cluster_id=cluster.pk, status="succeeded",
                   created_by=operator) for pk, _, name in guests], batch_size=2000)
    AuditEntry.objects.bulk_create(
        [AuditEntry(user=operator, username=operator.username, action="guests.guest_start",
                    target_type="guests.guest", target_id=str(pk), target_repr=name, result="accepted",
                    remote_addr="127.0.0.1") for pk, _, name in guests], batch_size=2000)
    # A storage that holds backups: the storage page lists only the content types its storage holds.
    storage = Storage.objects.filter(cluster=cluster, content__contains=["backup"]).order_by("-shared", "pk").first()
    StorageContent.objects.bulk_create(
        [StorageContent(storage=storage, volid=f"{storage.storage}:backup/vzdump-qemu-{vmid}-2026_12_01-00_00_00.vma.zst",
                        content="backup", size=2 ** 30, format="vma.zst", vmid=vmid) for _, vmid, _ in guests],
        batch_size=2000, ignore_conflicts=True)
    return storage


@contextlib.contextmanager
def served_connections():
    """Database connections kept between requests for CONN_MAX_AGE seconds, as served; at the end the
    server thread's connection is closed from here (it is idle), so the test database can be dropped."""
    settings_dict = connection.settings_dict  # the one dict every thread's connection reads
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = CONN_MAX_AGE
    try:
        yield
    finally:
        settings_dict["CONN_MAX_AGE"] = before
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND pid <> pg_backend_pid() AND state = 'idle'")


def measure(http, base, client, url):
    for _ in range(3):
        response = http.get(base + url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        http.get(base + url)
        times.append(time.perf_counter() - t0)
    queries = []  # counted by a wrapper: CaptureQueriesContext's log is full after the sync's writes
    with connection.execute_wrapper(lambda execute, *args: queries.append(1) or execute(*args)):
        client.get(url)
    if PROFILE:
        from pyinstrument import Profiler

        with Profiler(interval=0.0005) as profiler:
            client.get(url)
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    return times, len(queries)


@pytest.mark.timeout(1800)
def test_bench_lists_at_scale(operator, client, api, asgi_server):
    from apps.nodes import sync
    from apps.nodes.services import cluster_create
    from pvesim.testing import PvesimProcess

    with PvesimProcess(scale="50,10000", time_scale=1.0, startup_timeout=180) as sim:
        cluster = cluster_create(user=operator, name="scale", api_url=sim.url, token_id=sim.token_id,
                                 token_secret=sim.token_secret, tls_mode="pin", fingerprint=sim.fingerprint)
        assert sync.run_cycle(cluster.pk).ok
        storage = fill(cluster, operator)
        urls = [
            "/guests/?per_page=100&page=3", "/api/v1/guests/?page_size=100&page=3",
            "/nodes/?per_page=100", "/api/v1/nodes/?page_size=100",
            f"/storage/{storage.pk}/content/?per_page=100&backup_page=3", "/api/v1/storage-content/?page_size=100&page=3",
            "/operations/?per_page=100&page=3", "/api/v1/operations/?page_size=100&page=3",
            "/audit/?per_page=100&page=3", "/api/v1/audit/?page_size=100&page=3",
        ]
        if os.environ.get("BENCH_URLS"):  # e.g. BENCH_URLS=guests: only the URLs containing one of these words
            urls = [url for url in urls if any(word in url for word in os.environ["BENCH_URLS"].split(","))]
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        http = requests.Session()
        http.headers["Cookie"] = cookie
        stop, ready = threading.Event(), threading.Semaphore(0)
        viewers = [threading.Thread(target=_viewer, args=(asgi_server, cookie, cluster.live_group, stop, ready),
                                    daemon=True) for _ in range(VIEWERS)]
        for t in viewers:
            t.start()
        for _ in viewers:
            ready.acquire(timeout=60)
        sim.admin("DELETE", "/counters")
        print(f"\n[lists] {REQUESTS} requests per URL over HTTP, a page of 100, 10,000 guests / 50 nodes, {ROWS} "
              f"operations, audit entries and backups, {VIEWERS} websocket viewers, database connections kept "
              f"{CONN_MAX_AGE} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        try:
            with served_connections():
                for url in urls:
                    times, queries = measure(http, asgi_server.url, api.client if url.startswith("/api/") else client,
                                             url)
                    print(f"[lists] {url:<50} p50 {1000 * pct(times, 50):6.1f} ms  p95 {1000 * pct(times, 95):6.1f} "
                          f"ms  mean {1000 * statistics.mean(times):6.1f} ms  SQL {queries}")
        finally:
            stop.set()
            for t in viewers:
                t.join(10)
        print(f"[lists] Proxmox calls made by all of them: {sim.counters()['total']}; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
