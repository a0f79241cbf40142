"""Run pvesim as a subprocess for tests, benchmarks and the demo.

    with PvesimProcess(time_scale=20) as sim:
        sim.url, sim.fingerprint, sim.token_id, sim.token_secret
        sim.admin("POST", "/nodes/pve3/power", state="off")
        sim.ssh["pve1"]["port"]      # each node's SSH server (SFTP), see pvesim/sshd.py

`sparse=True` starts it with --sparse (only what the PVE schema promises; `schema=` names the file).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import urllib3


class PvesimProcess:
    def __init__(self, scenario: str | Path | None = None, time_scale: float = 20.0, scale: str | None = None,
                 port: int = 0, extra_args: list[str] | None = None, startup_timeout: float = 60.0,
                 sparse: bool = False, schema: str | Path | None = None):
        self.scenario, self.time_scale, self.scale, self.port = scenario, time_scale, scale, port
        self.sparse, self.schema = sparse, schema
        self.extra_args = extra_args or []
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self._dir = tempfile.mkdtemp(prefix="pvesim-")
        self._session = requests.Session()

    def start(self) -> "PvesimProcess":
        ready = Path(self._dir) / "ready.json"
        cmd = [sys.executable, "-m", "pvesim", "--port", str(self.port), "--time-scale", str(self.time_scale),
               "--ready-file", str(ready), *self.extra_args]
        if self.scenario:
            cmd += ["--scenario", str(self.scenario)]
        if self.scale:
            cmd += ["--scale", self.scale]
        if self.sparse:
            cmd += ["--sparse"]
        if self.schema:
            cmd += ["--schema", str(self.schema)]
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self._log = open(Path(self._dir) / "pvesim.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(root))
        deadline = time.monotonic() + self.startup_timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pvesim exited with {self.proc.returncode}: {Path(self._log.name).read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pvesim did not start in time")
            time.sleep(0.05)
        self.info = json.loads(ready.read_text())
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "PvesimProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- connection details ------------------------------------------------------------
    url = property(lambda self: self.info["url"])
    host = property(lambda self: self.info["host"])
    port_number = property(lambda self: self.info["port"])
    fingerprint = property(lambda self: self.info["fingerprint"])
    token_id = property(lambda self: self.info["token_id"])
    token_secret = property(lambda self: self.info["token_secret"])
    root_password = property(lambda self: self.info["root_password"])
    admin_secret = property(lambda self: self.info["admin_secret"])
    cert = property(lambda self: self.info["cert"])
    # node -> {"host", "port", "host_key", "fingerprint"} of each node's SSH server (pvesim/sshd.py)
    ssh = property(lambda self: self.info.get("ssh", {}))

    # ---- admin API ---------------------------------------------------------------------
    def admin(self, method: str, endpoint: str, /, **params) -> Any:
        """Call the /pvesim admin API; returns its `data`."""
        with _quiet():
            r = self._session.request(method, f"{self.url}/pvesim/{endpoint.lstrip('/')}", json=params or None,
                                      verify=self.cert, headers={"X-PVESim-Admin": self.admin_secret}, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"pvesim admin {method} {endpoint}: {r.status_code} {r.reason} {r.text}")
        return r.json()["data"]

    def reset(self) -> None:
        self.admin("POST", "/reset")

    def counters(self) -> dict:
        return self.admin("GET", "/counters")

    def api(self):
        """A proxmoxer client with the full-privilege token (for test setup and assertions)."""
        from proxmoxer import ProxmoxAPI
        user, token_name = self.token_id.split("!", 1)
        return ProxmoxAPI(self.host, port=self.info["port"], user=user, token_name=token_name,
                          token_value=self.token_secret, verify_ssl=False, timeout=30)


class _quiet:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
