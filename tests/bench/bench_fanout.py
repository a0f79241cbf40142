"""Benchmark of live fan-out: one change, many watchers. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_fanout.py -s -o norecursedirs= -o "python_files=bench_*.py"
    (or `make bench`)

The portal runs as its own uvicorn process (as served; its memory measured alone) on the test
database and the real Redis. BENCH_SUBSCRIBERS (default 1000) websocket clients, spread over 10
operators' sessions, subscribe to one cluster's group through /ws/live/ (HTML, as pages
receive them; a marked element carries the push's timestamp). The test process then pushes BENCH_PUSHES (default 10)
times the fragments of one guest's change as the sync renders them (`render_guest_fragments`: once
per audience, operators and each tenant, never per subscriber), BENCH_SPACING (2) seconds apart, so
each is one change on its own; clients receive HTML as a browser page does.
Figures: delivery delay from the push call to each client's receipt (p50, p99, max over every
client and push; the clients run in BENCH_CLIENT_PROCESSES (4) processes of their own), how many of the expected messages arrived, the rendering and group_send times,
and the portal's RSS growth per subscriber.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import time

import pytest
from bench_console import pct, rss_kib, start_portal  # tests/bench is on sys.path when pytest collects it
from fanout_clients import client_process
from django.test import Client

from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1000"))
PUSHES = int(os.environ.get("BENCH_PUSHES", "10"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "4"))
SPACING = float(os.environ.get("BENCH_SPACING", "2"))  # seconds between changes: each is one change


@pytest.mark.timeout(1800)
def test_bench_fanout(sim_cluster, django_user_model, settings):  # noqa: F811
    from apps.core import live

    # The portal process is not a test run: its channel layer has the plain prefix. Push on that one.
    settings.CHANNEL_LAYERS = {"default": {**settings.CHANNEL_LAYERS["default"], "CONFIG": {
        **settings.CHANNEL_LAYERS["default"]["CONFIG"], "prefix": "asgi"}}}
    from apps.guests.models import Guest
    from apps.guests.services import render_guest_fragments

    operators = [django_user_model.objects.create_user(username=f"watcher{i}", password="x", is_staff=True)
                 for i in range(10)]
    cookies = []
    for user in operators:
        client = Client()
        client.force_login(user)
        cookies.append(f"sessionid={client.cookies['sessionid'].value}")
    guest = Guest.objects.filter(cluster=sim_cluster).order_by("vmid").first()
    group = f"cluster-{sim_cluster.pk}"
    render_guest_fragments([guest])  # templates loaded and compiled once, as in a running worker
    t = time.perf_counter()
    html = render_guest_fragments([guest])  # what the sync renders once for the operators' audience
    render_time = time.perf_counter() - t

    proc, base = start_portal()
    context = multiprocessing.get_context("spawn")  # clients need no Django: a clean interpreter each
    ready, results = context.Queue(), context.Queue()
    url = f"{base}/ws/live/?groups={group}"  # HTML fragments, as a browser page receives them
    share = [SUBSCRIBERS // CLIENT_PROCESSES + (i < SUBSCRIBERS % CLIENT_PROCESSES) for i in range(CLIENT_PROCESSES)]
    clients = [context.Process(target=client_process, args=(url, cookies, n, PUSHES, ready, results))
               for n in share if n]
    try:
        before = rss_kib(proc.pid)
        t0 = time.perf_counter()
        for client in clients:
            client.start()
        subscribed = sum(ready.get(timeout=600) for _ in clients)
        connected = time.perf_counter() - t0
        time.sleep(2)
        after = rss_kib(proc.pid)
        push_times = []
        for n in range(PUSHES):
            time.sleep(SPACING)
            t = time.perf_counter()
            mark = f'<template id="bench-mark" data-n="{n}" data-sent="{time.time():.6f}"></template>'
            live.push(group, html=html + mark)
            push_times.append(time.perf_counter() - t)
        delays = [d for _ in clients for d in results.get(timeout=PUSHES * 30 + 120)]
        for client in clients:
            client.join(60)
    finally:
        for client in clients:
            if client.is_alive():
                client.kill()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)

    expected = SUBSCRIBERS * PUSHES
    print(f"\n== live fan-out: {SUBSCRIBERS} subscribers to {group}, {PUSHES} pushes "
          f"(load average {os.getloadavg()[0]:.1f}) ==")
    print(f"{subscribed} subscribed (from {len(clients)} client processes) in {connected:.1f} s")
    print(f"delivered {len(delays)} of {expected} messages")
    if delays:
        print(f"delay push -> client: p50 {pct(delays, .5) * 1000:.0f} ms, p99 {pct(delays, .99) * 1000:.0f} ms, "
              f"max {max(delays) * 1000:.0f} ms")
    print(f"rendering the pushed fragments once: {render_time * 1000:.1f} ms ({len(html)} bytes)")
    print(f"group_send per push (one message, any number of subscribers): "
          f"p50 {pct(push_times, .5) * 1000:.1f} ms")
    print(f"portal RSS: {before / 1024:.1f} MiB idle, {after / 1024:.1f} MiB with {SUBSCRIBERS}: "
          f"{(after - before) / SUBSCRIBERS:.0f} KiB per subscriber")
