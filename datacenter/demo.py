"""`make demo`: embedded PostgreSQL + Redis, migrations, pvesim + demo data, ASGI web, Celery
workers (operations, syncs) + beat, until Ctrl-C.

Everything it starts is stopped when this process exits (Ctrl-C, SIGTERM, or a child dying),
including the embedded PostgreSQL and Redis when they were not already running, so running it
again is safe. The children's output goes to var/log/<name>.log; the terminal gets a few lines
and, at the end of the start-up, one block with the URL, the logins and how to stop.
Env: PORT (web, default 8000), PVESIM_PORT (8006).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from datacenter import localservices

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DATACENTER_VAR_DIR", BASE_DIR / "var"))
LOG_DIR = VAR_DIR / "log"
READY_FILE = VAR_DIR / "pvesim.json"
CREDENTIALS = VAR_DIR / "demo_credentials.json"
PY = sys.executable
STOP_TIMEOUT = 20.0  # a Celery warm shutdown finishes the task in hand first


class Stop(Exception):
    """Ctrl-C or SIGTERM: leave whatever step we are in and shut down."""


# Not a signal mask: children would inherit it and ignore our SIGTERM.
_signals = {"held": False, "pending": False, "stopping": False}


def on_signal(signum, frame):
    if _signals["stopping"]:
        return
    if _signals["held"]:
        _signals["pending"] = True
        return
    _signals["stopping"] = True
    raise Stop


@contextlib.contextmanager
def held_signals():
    _signals["held"] = True
    try:
        yield
    finally:
        _signals["held"] = False
    if _signals["pending"] and not _signals["stopping"]:
        _signals["stopping"] = True
        raise Stop


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(BASE_DIR))
    return str(path)


def log_tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


class Children:
    def __init__(self):
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        logfile = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        # Ctrl-C held back until the child is on our list, so none is left behind unrecorded.
        with held_signals():
            # Own session: Ctrl-C reaches only us, and we stop each child in order.
            proc = subprocess.Popen(args, cwd=BASE_DIR, start_new_session=True, stdout=logfile,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.procs.append((name, proc))
        logfile.close()
        return proc

    def dead(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = log_tail(LOG_DIR / f"{name}.log")
                return f"{name} exited with code {proc.returncode}; last lines of var/log/{name}.log:\n{tail}"
        return None

    def stop_all(self) -> None:
        # SIGTERM to each main process only: Celery's pool children are its to stop (a signal to
        # the whole group kills them under it, which it reports as WorkerLostError).
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {STOP_TIMEOUT:.0f}s: killed")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything left in its session
            proc.wait()


def run_logged(name: str, args: list[str]) -> None:
    """A one-shot step, output to var/log/<name>.log; raises with its last lines when it fails."""
    with open(LOG_DIR / f"{name}.log", "ab") as logfile:
        result = subprocess.run(args, cwd=BASE_DIR, stdout=logfile, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {result.returncode}); last lines of var/log/{name}.log:\n"
                           f"{log_tail(LOG_DIR / f'{name}.log')}")


def wait_ready(proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pvesim exited with code {proc.returncode} before it was ready; "
                               f"see var/log/pvesim.log:\n{log_tail(LOG_DIR / 'pvesim.log')}")
        if READY_FILE.exists():
            try:
                return json.loads(READY_FILE.read_text())
            except json.JSONDecodeError:
                pass  # half-written; try again
        time.sleep(0.2)
    raise RuntimeError(f"pvesim did not write {READY_FILE} within {timeout:.0f}s; see var/log/pvesim.log")


def wait_port(proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"web exited with code {proc.returncode}; last lines of var/log/web.log:\n"
                               f"{log_tail(LOG_DIR / 'web.log')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the web server did not answer on port {port} within {timeout:.0f}s; see var/log/web.log")


def ensure_login() -> None:
    """A demo without any operator cannot be used: make `admin`, its password kept with the others."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_staff=True, is_active=True).exists():
        return
    import secrets

    saved = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
    saved.setdefault("admin", secrets.token_urlsafe(12))
    User.objects.create_superuser("admin", "admin@localhost", saved["admin"])
    CREDENTIALS.write_text(json.dumps(saved, indent=2))
    CREDENTIALS.chmod(0o600)


def summary(port: str, places: dict[str, str]) -> str:
    saved = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
    width = 11
    lines = ["", "=" * 64, f"{'Datacenter:':<{width}} http://127.0.0.1:{port}/"]
    roles = {"operator": "operator", "admin": "superuser"}
    for username, password in saved.items():
        # Demo tenant accounts are named <tenant>-admin / <tenant>-member (permissions' demo_tenants).
        tenant, _, kind = username.rpartition("-")
        role = roles.get(username) or (f"{kind} of tenant {tenant}" if tenant and kind in ("admin", "member")
                                       else "account")
        lines.append(f"{'Login:':<{width}} {username} / {password}  ({role})")
    lines.append(f"{'Kept in:':<{width}} {rel(CREDENTIALS)}")
    for name, place in places.items():
        lines.append(f"{'Data:':<{width}} {name} in {place}")
    lines.append(f"{'Logs:':<{width}} {rel(LOG_DIR)}/ (web, worker, sync-worker, beat, pvesim, migrate, demo_setup)")
    lines.append(f"{'Stop:':<{width}} Ctrl-C stops all of it (make services-stop stops leftovers)")
    lines.append("=" * 64)
    return "\n".join(lines)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    pvesim_port = os.environ.get("PVESIM_PORT", "8006")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    READY_FILE.unlink(missing_ok=True)

    children = Children()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started_services: set[str] = set()
    try:
        before = {state.name for state in localservices.status() if state.managed and state.running}
        managed = {state.name for state in localservices.status() if state.managed}
        log("starting the embedded PostgreSQL and Redis" if managed else "using DATABASE_URL and REDIS_URL")
        try:
            localservices.start()
        finally:
            started_services = managed - before
        places = localservices.where()
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")
        import django

        django.setup()
        log(f"applying migrations (log: {rel(LOG_DIR / 'migrate.log')})")
        run_logged("migrate", [PY, "manage.py", "migrate", "--noinput"])
        log("starting pvesim, a simulated 3-node Proxmox cluster")
        sim = children.start("pvesim", [PY, "-m", "pvesim", "--port", pvesim_port,
                                        "--ready-file", str(READY_FILE), "--time-scale", "1"])
        wait_ready(sim)
        log("registering it and running a first sync")
        try:
            run_logged("demo_setup", [PY, "manage.py", "demo_setup", "--pvesim", str(READY_FILE)])
        except RuntimeError as exc:
            log(f"{exc}\n[demo] the UI still starts; the cluster syncs once the worker runs")
        ensure_login()
        log("starting the web server, the Celery workers and beat")
        from django.conf import settings

        # Operations on the default queue; syncs and refreshes on their own (threads: a slow cluster
        # holds one of them, never an operation or another cluster's sync).
        children.start("worker", [PY, "-m", "celery", "-A", "datacenter", "worker", "-l", "info",
                                  "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "--concurrency", "2", "-n", "demo@%h"])
        children.start("sync-worker", [PY, "-m", "celery", "-A", "datacenter", "worker", "-l", "info",
                                       "-Q", settings.CELERY_SYNC_QUEUE, "--pool", "threads", "--concurrency", "8",
                                       "-n", "demo-sync@%h"])
        children.start("beat", [PY, "-m", "celery", "-A", "datacenter", "beat", "-l", "info",
                                "-s", str(VAR_DIR / "celerybeat-schedule")])
        web = children.start("web", [PY, "-m", "uvicorn", "datacenter.asgi:application", "--host", "127.0.0.1",
                                     "--port", port, "--no-access-log",
                                     # one fragment to many sockets: compressing it once per socket costs
                                     # more CPU and memory than it saves on the wire (README design notes)
                                     "--ws-per-message-deflate", "false"])
        wait_port(web, int(port))
        print(summary(port, places), flush=True)
        while True:
            problem = children.dead()
            if problem:
                log(problem)
                return 1
            time.sleep(0.5)
    except Stop:
        log("stopping")
        return 0
    except (RuntimeError, localservices.ServiceError) as exc:
        log(str(exc))
        return 1
    finally:
        _signals["stopping"] = True  # a second Ctrl-C must not interrupt the shutdown
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        children.stop_all()
        if started_services:
            localservices.stop(started_services)
        log("stopped everything it started" + (" (PostgreSQL and Redis too)" if started_services else ""))


if __name__ == "__main__":
    sys.exit(main())
