"""`make demo` end to end: embedded services, pvesim, web, worker and beat come up, the start-up
ends with the URL and logins, and Ctrl-C (SIGINT to the process group, as a terminal sends it)
leaves no process and no port behind, and no traceback in the logs."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_with(marker: str) -> list[int]:
    """Processes whose environment carries marker (every child of the demo inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="dc-demo-"))
    path.chmod(0o755)
    yield path
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    subprocess.run([sys.executable, "-m", "datacenter.localservices", "forget"], cwd=ROOT,
                   env={**env, "DATACENTER_VAR_DIR": str(path)}, capture_output=True, timeout=120)
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_demo_starts_everything_and_ctrl_c_stops_everything(var_dir):
    web_port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DATACENTER_VAR_DIR=str(var_dir), PORT=str(web_port), PVESIM_PORT=str(sim_port))
    marker = f"DATACENTER_VAR_DIR={var_dir}"
    demo = subprocess.Popen([sys.executable, "-m", "datacenter.demo"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("Stop:"):
                break
        text = "".join(output)
        assert "Stop:" in text, text
        creds = json.loads((var_dir / "demo_credentials.json").read_text())
        assert f"Datacenter: http://127.0.0.1:{web_port}/" in text
        assert f"operator / {creds['operator']}" in text
        for username in ("acme-admin", "acme-member", "globex-admin", "globex-member"):
            assert f"{username} / {creds[username]}" in text
        assert "var/demo_credentials.json" in text or str(var_dir / "demo_credentials.json") in text
        assert "Data:       postgresql in " in text and "Data:       redis in " in text
        assert len(output) < 30, text  # one short block, not pages of pip/migration/Celery output
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/login/", timeout=10) as response:
            assert response.status == 200
        services = dict(line.split("=", 1) for line in (var_dir / "services.env").read_text().splitlines()
                        if "=" in line and not line.startswith("#"))
        ports = [web_port, sim_port] + [int(url.rsplit(":", 1)[1].split("/")[0]) for url in services.values()]
        assert all(listening(port) for port in ports)
        assert len(processes_with(marker)) >= 6  # pvesim, web, worker (+pool), beat, PostgreSQL, Redis

        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, rest
    assert "stopped everything it started (PostgreSQL and Redis too)" in rest
    assert processes_with(marker) == [], "processes left behind"
    assert [port for port in ports if listening(port)] == []
    for log in (var_dir / "log").glob("*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and "WorkerLostError" not in text, f"{log.name}:\n{text[-3000:]}"
