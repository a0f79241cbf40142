"""Benchmark of the console relay. Prints figures; no assertions on time.

    .venv/bin/pytest tests/bench/bench_console.py -s -o norecursedirs= -o "python_files=bench_*.py"
    (or `make bench`)

The portal runs as its own uvicorn process (so its memory is measured alone) on the test
database and the real Redis; pvesim is the session's. 200 console sessions are opened through
/ws/guests/<id>/console/ and /ws/nodes/<id>/console/ (container terminals and node shells spread
over the three nodes: a node has 100 console ports, 5900-5999, as in PVE) by 25 operators (the
per-user limit stays at its default). Figures:

- connect: websocket open -> the terminal's prompt, through the relay (ticket + upstream included);
- added latency: one keystroke's echo through the relay minus the same echo on a direct
  connection to pvesim's vncwebsocket, with all 200 sessions open (BENCH_ECHOES per session sampled);
- memory: the portal process's RSS growth per open session.
BENCH_SESSIONS (default 200) changes the count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test import Client

from tests.conftest import free_port
from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

SESSIONS = int(os.environ.get("BENCH_SESSIONS", "200"))
ECHOES = int(os.environ.get("BENCH_ECHOES", "5"))
ROOT = Path(__file__).resolve().parents[2]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_portal() -> tuple[subprocess.Popen, str]:
    port = free_port()
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "datacenter.asgi:application", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning", "--ws", "websockets-sansio",
                             "--ws-per-message-deflate", "false"],  # as make demo serves
                            cwd=str(ROOT), env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except requests.RequestException:
            assert proc.poll() is None and time.monotonic() < deadline, "the portal did not start"
            time.sleep(0.2)
    return proc, f"ws://127.0.0.1:{port}"


async def open_terminal(url: str, cookie: str, prompt: bytes):
    from websockets.asyncio.client import connect

    t0 = time.perf_counter()
    ws = await connect(url, additional_headers={"Cookie": cookie}, subprotocols=["binary"], open_timeout=60,
                       ping_interval=None)
    seen = b""
    while prompt not in seen:
        seen += await asyncio.wait_for(ws.recv(), 60)
    return ws, time.perf_counter() - t0


async def echo_rtt(ws) -> float:
    """One keystroke to its echo (the line terminal echoes each typed character)."""
    t0 = time.perf_counter()
    await ws.send(b"0:1:x")
    while b"x" not in await asyncio.wait_for(ws.recv(), 30):
        pass
    return time.perf_counter() - t0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@pytest.mark.timeout(1800)
def test_bench_console_sessions(sim_cluster, django_user_model):  # noqa: F811
    from apps.guests.models import Guest
    from apps.nodes.models import Node
    from apps.proxmox import console as gateway

    users = [django_user_model.objects.create_user(username=f"op{i}", password="x", is_staff=True) for i in range(25)]
    cookies = []
    for user in users:
        client = Client()
        client.force_login(user)
        cookies.append(f"sessionid={client.cookies['sessionid'].value}")
    nodes = {n.name: n for n in Node.objects.filter(cluster=sim_cluster)}
    cts = {g.vmid: g for g in Guest.objects.filter(cluster=sim_cluster, vmid__in=[200, 201])}
    # (path, prompt, node): container 200 on pve1, 201 on pve3, and each node's shell.
    targets = [(f"/ws/guests/{cts[200].pk}/console/", b"root@dns-01:~# ", "pve1"),
               (f"/ws/guests/{cts[201].pk}/console/", b"root@proxy-01:~# ", "pve3"),
               *[(f"/ws/nodes/{nodes[n].pk}/console/", f"root@{n}:~# ".encode(), n) for n in ("pve1", "pve2", "pve3")]]
    plan, per_node = [], {}
    while len(plan) < SESSIONS:
        for path, prompt, node in targets:
            if len(plan) < SESSIONS and per_node.get(node, 0) < 95:
                per_node[node] = per_node.get(node, 0) + 1
                plan.append((path, prompt))

    proc, base = start_portal()
    try:
        async def run():
            warm, _ = await open_terminal(base + plan[0][0], cookies[0], plan[0][1])
            await warm.close()
            await asyncio.sleep(1)
            before = rss_kib(proc.pid)
            sockets, connects = [], []
            for start in range(0, len(plan), 20):  # 20 at a time, as a crowd of people would
                batch = await asyncio.gather(*[
                    open_terminal(base + path, cookies[(start + i) % len(cookies)], prompt)
                    for i, (path, prompt) in enumerate(plan[start:start + 20])])
                sockets += [ws for ws, _ in batch]
                connects += [t for _, t in batch]
            await asyncio.sleep(2)
            after = rss_kib(proc.pid)
            relayed = []
            for ws in sockets:
                for _ in range(ECHOES):
                    relayed.append(await echo_rtt(ws))
            # The same echo straight to pvesim (the gateway's own connection), for the baseline.
            client = sim_cluster.client()
            direct = []
            try:
                for _ in range(10):
                    ticket = gateway.request_ticket(client, "node", "pve2", None)
                    upstream = await gateway.open_console(client, "node", "pve2", None, ticket)
                    while b"root@pve2:~# " not in await upstream.recv():
                        pass
                    for _ in range(ECHOES):
                        direct.append(await echo_rtt(upstream.conn))
                    await upstream.close()
            finally:
                client.close()
            for ws in sockets:
                await ws.close()
            return before, after, connects, relayed, direct

        before, after, connects, relayed, direct = asyncio.run(run())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    from apps.consoles.models import ConsoleSession

    open_rows = ConsoleSession.objects.filter(ended_at__isnull=True).count()
    print(f"\n== console relay: {len(connects)} sessions open at once ({per_node}) ==")
    print(f"connect (open -> prompt): mean {statistics.mean(connects) * 1000:.0f} ms, "
          f"p95 {pct(connects, .95) * 1000:.0f} ms")
    print(f"echo through the relay: p50 {pct(relayed, .5) * 1000:.2f} ms, p95 {pct(relayed, .95) * 1000:.2f} ms; "
          f"direct to pvesim: p50 {pct(direct, .5) * 1000:.2f} ms, p95 {pct(direct, .95) * 1000:.2f} ms")
    print(f"added latency: p50 {(pct(relayed, .5) - pct(direct, .5)) * 1000:.2f} ms, "
          f"p95 {(pct(relayed, .95) - pct(direct, .95)) * 1000:.2f} ms")
    print(f"portal RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with {len(connects)} open: "
          f"{(after - before) / len(connects):.0f} KiB per session")
    print(f"session rows still open after all closed: {open_rows}")
