"""`make demo`: pvesim + demo data + ASGI web + Celery worker + beat, until Ctrl-C.

Run after `make migrate`. Every child is stopped when this process exits (Ctrl-C, SIGTERM, or a
child dying), so running it again is safe. Env: PORT (web, default 8000), PVESIM_PORT (8006).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
READY_FILE = VAR_DIR / "pvesim.json"
PY = sys.executable


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


class Children:
    def __init__(self):
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], **kwargs) -> subprocess.Popen:
        # Own process group: Ctrl-C reaches us once and we stop each child in order.
        proc = subprocess.Popen(args, cwd=BASE_DIR, start_new_session=True, **kwargs)
        self.procs.append((name, proc))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def dead(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        return None

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log(f"stopped {name}")


def wait_ready(proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pvesim exited with code {proc.returncode} before it was ready")
        if READY_FILE.exists():
            try:
                return json.loads(READY_FILE.read_text())
            except json.JSONDecodeError:
                pass  # half-written; try again
        time.sleep(0.2)
    raise RuntimeError(f"pvesim did not write {READY_FILE} within {timeout:.0f}s")


def demo_setup() -> None:
    """Load the demo cluster into the database; tolerated while the command does not exist yet."""
    from django.core.management import get_commands

    if "demo_setup" not in get_commands():
        log("manage.py demo_setup is not available yet: skipping demo data")
        return
    result = subprocess.run([PY, "manage.py", "demo_setup", "--pvesim", str(READY_FILE)], cwd=BASE_DIR)
    if result.returncode != 0:
        log(f"demo_setup failed (exit {result.returncode}); the UI still starts")


def ensure_login() -> None:
    """A demo without any operator cannot be used: make `admin` with a password kept in var/."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if User.objects.filter(is_staff=True, is_active=True).exists():
        return
    import secrets

    password_file = VAR_DIR / "demo_admin_password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    User.objects.create_superuser("admin", "admin@localhost", password_file.read_text().strip())
    log(f"created operator 'admin' (password in {password_file})")


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datacenter.settings")
    import django

    django.setup()
    port = os.environ.get("PORT", "8000")
    pvesim_port = os.environ.get("PVESIM_PORT", "8006")
    VAR_DIR.mkdir(exist_ok=True)
    READY_FILE.unlink(missing_ok=True)

    children = Children()
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim = children.start("pvesim", [PY, "-m", "pvesim", "--port", pvesim_port,
                                        "--ready-file", str(READY_FILE), "--time-scale", "1"])
        ready = wait_ready(sim)
        log(f"pvesim ready at {ready.get('url', '?')}")
        demo_setup()
        ensure_login()
        password_file = VAR_DIR / "demo_admin_password"
        if password_file.exists():
            log(f"log in as admin / {password_file.read_text().strip()}")
        children.start("worker", [PY, "-m", "celery", "-A", "datacenter", "worker", "-l", "warning",
                                  "--concurrency", "2", "-n", "demo@%h"])
        children.start("beat", [PY, "-m", "celery", "-A", "datacenter", "beat", "-l", "warning",
                                "-s", str(VAR_DIR / "celerybeat-schedule")])
        children.start("web", [PY, "-m", "uvicorn", "datacenter.asgi:application", "--host", "127.0.0.1",
                               "--port", port, "--no-access-log"])
        log(f"open http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
        while not stopping:
            problem = children.dead()
            if problem:
                log(problem)
                return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        log(str(exc))
        return 1
    finally:
        children.stop_all()


if __name__ == "__main__":
    sys.exit(main())
