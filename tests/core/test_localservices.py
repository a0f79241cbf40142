"""Embedded PostgreSQL + Redis: start is idempotent, writes services.env, stop stops them.

Runs the real module in a throwaway var/ directory (readable by the unprivileged PostgreSQL
account), so it does not touch the servers this test run uses."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis

from datacenter import localservices

ROOT = Path(__file__).resolve().parents[2]


def run(var_dir, *args):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["DATACENTER_VAR_DIR"] = str(var_dir)
    return subprocess.run([sys.executable, "-m", "datacenter.localservices", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="dc-localservices-"))
    path.chmod(0o755)  # the PostgreSQL account must reach its data directory
    yield path
    run(path, "stop")
    shutil.rmtree(path, ignore_errors=True)


def read_env(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_start_status_env_stop(var_dir):
    started = run(var_dir, "start")
    assert started.returncode == 0, started.stderr
    urls = read_env(var_dir / "services.env")
    assert urls["DATABASE_URL"].startswith("postgres://postgres@127.0.0.1:")
    assert urls["DATABASE_URL"].endswith("/datacenter")
    assert urls["REDIS_URL"].startswith("redis://127.0.0.1:")

    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"
    # PostgreSQL refuses to run as root: as root, the data belongs to an unprivileged account
    if os.geteuid() == 0:
        assert (var_dir / "pgdata").stat().st_uid != 0
    assert redis.Redis.from_url(urls["REDIS_URL"]).ping()

    again = run(var_dir, "start")  # idempotent: same servers, same URLs
    assert again.returncode == 0, again.stderr
    assert read_env(var_dir / "services.env") == urls

    status = run(var_dir, "status")
    assert status.returncode == 0
    assert "postgresql: running" in status.stdout and "redis: running" in status.stdout
    exported = run(var_dir, "env").stdout
    assert f"export DATABASE_URL={urls['DATABASE_URL']}" in exported

    assert run(var_dir, "stop").returncode == 0
    status = run(var_dir, "status")
    assert status.returncode == 3
    assert "postgresql: stopped" in status.stdout and "redis: stopped" in status.stdout


def test_explicit_urls_are_left_alone(var_dir):
    env = {**os.environ, "DATACENTER_VAR_DIR": str(var_dir),
           "DATABASE_URL": "postgres://someone@db.example/x", "REDIS_URL": "redis://cache.example/0"}
    result = subprocess.run([sys.executable, "-m", "datacenter.localservices", "status"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert "postgresql: external (postgres://someone@db.example/x)" in result.stdout
    assert "redis: external (redis://cache.example/0)" in result.stdout
    assert not (var_dir / "pgdata").exists()


def test_busy_preferred_port_is_skipped():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        assert localservices._pick_port(busy) != busy


def test_unknown_command_prints_usage(var_dir):
    result = run(var_dir, "frobnicate")
    assert result.returncode == 2
    assert "start" in result.stderr and "stop" in result.stderr
