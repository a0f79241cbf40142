"""A websocket that records live pushes with their arrival time, for the freshness benchmarks
(bench_freshness.py, bench_clusters.py). Frames are JSON (`format=json` on /ws/live/)."""

from __future__ import annotations

import json
import threading
import time


class Subscriber:
    """One websocket at `url` (authenticated by `headers`: a session cookie or a token), every push
    kept with its arrival (wall clock, seconds). Reconnects when the connection drops."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.url, self.headers = url, headers
        self.pushes: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(60), "the websocket did not open"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    def _run(self):
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        while not self.stop.is_set():
            try:
                with connect(self.url, additional_headers=self.headers, open_timeout=30, max_size=None) as ws:
                    self.ready.set()
                    while not self.stop.is_set():
                        try:
                            frame = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        at = time.time()
                        try:
                            message = json.loads(frame)
                        except ValueError:
                            continue
                        with self.lock:
                            self.pushes.append((at, message))
            except (ConnectionClosed, OSError):
                self.stop.wait(1.0)

    def first(self, since: float, match, timeout: float = 60.0) -> float | None:
        """Arrival of the first push after `since` (wall clock) for which match(message) holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = next((at for at, m in self.pushes if at >= since and match(m)), None)
            if found is not None:
                return found
            time.sleep(0.02)
        return None


def guest_push(guest_pk: int, text: str = ""):
    """A match for `first`: a guests push that names `guest_pk` (and holds `text`)."""
    def match(message) -> bool:
        data = message.get("data") or {}
        return data.get("type") == "guests" and guest_pk in (data.get("changed") or []) \
            and text in (message.get("html") or "")
    return match
