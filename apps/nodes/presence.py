"""Redis helpers for the sync: who watches a cluster (or node), locks, dedup keys, metrics.

Watchers: each open page subscribed to `cluster-<id>` is one member of a sorted set scored by
its expiry time; the live consumer refreshes it every PRESENCE_REFRESH seconds and removes it on
disconnect, so a crashed web process stops counting after WATCH_TTL seconds.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
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
            pipe.zadd(key("watched"), {group: expires})  # the index watched_groups reads
        else:
            pipe.zrem(key("watch", group), channel)
    if present:
        pipe.expire(key("watched"), WATCH_TTL * 2)
    pipe.execute()


def watched_groups(*prefixes: str) -> list[str]:
    """Groups someone may be watching, of these prefixes (`guest-`, `node-`...), from one index of
    every watched group: a beat task finds the open guest pages among 10,000 guests without a
    query or a Redis call per guest. A group stays listed until its last watcher's expiry, so
    callers confirm with watcher_counts."""
    now = time.time()
    pipe = client().pipeline(transaction=False)
    pipe.zremrangebyscore(key("watched"), "-inf", now)
    pipe.zrange(key("watched"), 0, -1)
    members = [m.decode() for m in pipe.execute()[1]]
    return [m for m in members if m.startswith(prefixes)] if prefixes else members


def watch_tenants(groups: list[str], channel: str, present: bool = True) -> None:
    """`tenant-<id>` pages count as watchers of the clusters where those tenants have a pool."""
    from apps.permissions.models import TenantPool

    ids = [int(g.split("-", 1)[1]) for g in groups if g.split("-", 1)[1].isdigit()]
    clusters = TenantPool.objects.filter(tenant_id__in=ids).values_list("cluster_id", flat=True).distinct()
    watch([f"cluster-{pk}" for pk in clusters], channel, present)


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


def lock(name: str, ident, timeout: int, wait: float = 0.0):
    """A Redis lock (expires after `timeout` s if its holder dies); acquiring it waits up to `wait`
    seconds for another holder (0: does not wait)."""
    return client().lock(key("lock", name, ident), timeout=timeout, blocking=wait > 0,
                         blocking_timeout=wait if wait > 0 else None)


@contextmanager
def locked(name: str, ident, timeout: int, wait: float = 0.0, max_hold: float | None = None):
    """Hold lock `name`/`ident` for the block: yields True, or False (holding nothing) when another
    holder still has it after `wait` seconds. Released at the end; one that expired while we ran is
    simply gone.

    With `max_hold`, the lock's TTL is a short `timeout` renewed by a background thread every
    timeout/3 seconds for at most `max_hold` seconds: a holder that dies (SIGKILL, a lost node)
    frees the lock within `timeout` seconds, while a long block keeps it."""
    held = lock(name, ident, timeout, wait)
    if not held.acquire():
        yield False
        return
    stop = threading.Event()
    renewer = None
    if max_hold:
        renewer = threading.Thread(target=_renew, args=(held, timeout, max_hold, stop), daemon=True,
                                   name=f"lock-renew-{name}-{ident}")
        renewer.start()
    try:
        yield True
    finally:
        stop.set()
        if renewer is not None:
            renewer.join(timeout=5)
        try:
            held.release()
        except redis.exceptions.LockError:
            pass


def _renew(held, timeout: int, max_hold: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + max_hold
    while not stop.wait(timeout / 3):
        if time.monotonic() >= deadline:
            return  # past max_hold the lock expires by itself: a stuck holder cannot keep it forever
        try:
            held.reacquire()
        except (redis.exceptions.LockError, redis.exceptions.RedisError):
            return  # lost (expired or Redis gone): the holder finds out when it releases


def is_locked(name: str, ident) -> bool:
    return bool(client().exists(key("lock", name, ident)))


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
