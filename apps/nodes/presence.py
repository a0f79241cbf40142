"""Redis helpers for the sync: who watches a cluster (or node), locks, dedup keys, metrics.

Watchers: each open page subscribed to `cluster-<id>` is one member of a sorted set scored by
its expiry time; the live consumer refreshes it every PRESENCE_REFRESH seconds and removes it on
disconnect, so a crashed web process stops counting after WATCH_TTL seconds.
"""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from django.conf import settings

WATCH_TTL = 30  # seconds a watcher counts without a refresh


@lru_cache(maxsize=1)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def client() -> redis.Redis:
    return _client_for(settings.REDIS_URL)


def key(*parts) -> str:
    # Same prefix as the cache: separate per test run and per deployment.
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "dc"
    return f"{prefix}:nodes:" + ":".join(str(p) for p in parts)


def watch(groups: list[str], channel: str, present: bool = True) -> None:
    """Mark `channel` as watching (or no longer watching) each group."""
    if not groups:
        return
    expires = time.time() + WATCH_TTL
    pipe = client().pipeline(transaction=False)
    for group in groups:
        if present:
            pipe.zadd(key("watch", group), {channel: expires})
            pipe.expire(key("watch", group), WATCH_TTL * 2)
        else:
            pipe.zrem(key("watch", group), channel)
    pipe.execute()


def watcher_counts(groups: list[str]) -> dict[str, int]:
    """Live watchers per group (expired members are dropped on the way), one round trip."""
    if not groups:
        return {}
    now = time.time()
    pipe = client().pipeline(transaction=False)
    for group in groups:
        pipe.zremrangebyscore(key("watch", group), "-inf", now)
        pipe.zcard(key("watch", group))
    results = pipe.execute()
    return {group: int(results[i * 2 + 1]) for i, group in enumerate(groups)}


def watcher_count(group: str) -> int:
    return watcher_counts([group])[group]


def mark_queued(name: str, ident, ttl: int) -> bool:
    """True the first time within `ttl` seconds (dedups enqueues between beat ticks)."""
    return bool(client().set(key("queued", name, ident), "1", nx=True, ex=ttl))


def take_queued(name: str, ident) -> bool:
    """True (and cleared) when the flag was set."""
    return bool(client().delete(key("queued", name, ident)))


def clear_queued(name: str, ident) -> None:
    client().delete(key("queued", name, ident))


def lock(name: str, ident, timeout: int):
    """A non-blocking Redis lock (expires after `timeout` s if its holder dies)."""
    return client().lock(key("lock", name, ident), timeout=timeout, blocking=False)


def record_cycle(cluster_id: int, *, calls: dict[str, int], rows: int, ok: bool) -> None:
    """Accumulate per-cluster sync counters for /metrics (workers and web are different processes)."""
    pipe = client().pipeline(transaction=False)
    h = key("metrics", cluster_id)
    for path, n in calls.items():
        pipe.hincrby(h, f"calls {path}", n)
    pipe.hincrby(h, "cycles_ok" if ok else "cycles_failed", 1)
    pipe.hincrby(h, "rows_written", rows)
    pipe.execute()


def cycle_metrics(cluster_ids: list[int]) -> dict[int, dict[str, int]]:
    if not cluster_ids:
        return {}
    pipe = client().pipeline(transaction=False)
    for pk in cluster_ids:
        pipe.hgetall(key("metrics", pk))
    return {pk: {k.decode(): int(v) for k, v in raw.items()} for pk, raw in zip(cluster_ids, pipe.execute())}
