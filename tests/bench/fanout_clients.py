"""Websocket clients of bench_fanout.py, in processes of their own (no Django here: spawned clean)."""

from __future__ import annotations

import asyncio
import re
import time

MARK = re.compile(r'<template id="bench-mark" data-n="(\d+)" data-sent="([\d.]+)">')


def client_process(url: str, cookies: list[str], count: int, expected: int, ready, results) -> None:
    """One of several client processes (the portal's own CPU is what is measured, not the clients'):
    opens `count` sockets, reports ready, then records the delay of each marked push it receives."""
    asyncio.run(_clients(url, cookies, count, expected, ready, results))


async def _clients(url, cookies, count, expected, ready, results):
    from websockets.asyncio.client import connect

    async def subscribe(i):  # the consumer joins its groups before it accepts: open means subscribed
        return await connect(url, additional_headers={"Cookie": cookies[i % len(cookies)],
                                                      "Origin": "http://127.0.0.1"},
                             open_timeout=120, ping_interval=None, max_queue=None)

    sockets = []
    for start in range(0, count, 50):
        sockets += await asyncio.gather(*[subscribe(start + i) for i in range(min(50, count - start))])
    ready.put(len(sockets))
    delays: list[float] = []

    async def listen(ws):
        got = 0
        try:
            while got < expected:
                mark = MARK.search(await ws.recv())
                if mark:
                    delays.append(time.time() - float(mark[2]))
                    got += 1
        except Exception:  # closed: what arrived is counted
            pass

    await asyncio.wait([asyncio.ensure_future(listen(ws)) for ws in sockets], timeout=expected * 30 + 60)
    for ws in sockets:
        await ws.close()
    results.put(delays)
