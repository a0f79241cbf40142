"""Readiness checks behind /healthz: the database, Redis, and a live Celery worker."""

from __future__ import annotations

import time
from typing import Callable

import redis
from django.conf import settings
from django.db import connection

CELERY_PING_TIMEOUT = 1.0


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def check_redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_celery(app=None, timeout: float = CELERY_PING_TIMEOUT) -> dict:
    """At least one worker answers a broadcast ping within `timeout` seconds."""
    if app is None:
        from datacenter.celery import app
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
        # limit=1: answer as soon as one worker replies instead of waiting out the timeout
        replies = app.control.ping(timeout=timeout, connection=conn, limit=1)
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        raise RuntimeError("no worker answered a ping")
    return {"workers": workers}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
}


def run_checks() -> tuple[bool, dict]:
    """Run every check; returns (all ok, {name: {"ok", "ms", "error"?, ...}})."""
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            result = {"ok": True, **check()}
        except Exception as exc:  # a health check reports every failure, never raises
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = result
    return all(r["ok"] for r in results.values()), results
