"""Benchmark: GET /cluster/resources on a 50-node, 10 000-guest pvesim, over HTTPS with keep-alive.

    python tests/bench/bench_pvesim.py [--seconds 10] [--scale 50,10000]

Prints requests/second for 1 and 4 concurrent clients (each a keep-alive requests.Session), latency
percentiles and the response size; then the same for a privilege-separated token (PVEAuditor on /),
whose calls go through the ACL engine for every guest. No assertions on time: figures only.
`make bench` may also collect it with pytest (test_bench_cluster_resources, marked `bench`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pvesim.testing import PvesimProcess  # noqa: E402

warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
PATH = "/api2/json/cluster/resources"


def measure(url: str, auth: str, clients: int, seconds: float, cert: str) -> dict:
    """Hammer url from `clients` threads for `seconds`; each thread keeps one connection alive."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sizes: list[int] = []
    errors: list[str] = []
    start_gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = auth
        start_gate.wait()
        while time.monotonic() < deadline[0]:
            t0 = time.monotonic()
            r = session.get(url, timeout=60, verify=cert)  # per request: REQUESTS_CA_BUNDLE beats session.verify
            latencies[i].append(time.monotonic() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.reason}")
            elif not sizes:
                sizes.append(len(r.content))
        session.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds
    began = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    flat = sorted(x for per in latencies for x in per)
    return {
        "clients": clients, "requests": len(flat), "seconds": elapsed, "rps": len(flat) / elapsed,
        "p50_ms": 1000 * statistics.median(flat) if flat else 0.0,
        "p95_ms": 1000 * flat[int(len(flat) * 0.95) - 1] if len(flat) >= 20 else (1000 * flat[-1] if flat else 0.0),
        "bytes": sizes[0] if sizes else 0, "errors": len(errors),
    }


def limited_token(sim: PvesimProcess) -> str:
    """A privsep token of a fresh user, PVEAuditor on / for both: every guest goes through the ACL engine."""
    pve = sim.api()
    pve.access.users.post(userid="bench@pve")
    pve.access.acl.put(path="/", roles="PVEAuditor", users="bench@pve")
    token = pve.access.users("bench@pve").token("bench").post(privsep=1)
    pve.access.acl.put(path="/", roles="PVEAuditor", tokens=token["full-tokenid"])
    return f"PVEAPIToken={token['full-tokenid']}={token['value']}"


def report(label: str, result: dict) -> None:
    print(f"{label:<34} {result['clients']} client(s): {result['rps']:7.1f} req/s  "
          f"p50 {result['p50_ms']:7.1f} ms  p95 {result['p95_ms']:7.1f} ms  "
          f"({result['requests']} requests in {result['seconds']:.1f} s, {result['errors']} errors)", flush=True)


def run(seconds: float = 10.0, scale: str = "50,10000", warmup: int = 3) -> list[dict]:
    results = []
    print(f"starting pvesim --scale {scale} ...", flush=True)
    t0 = time.monotonic()
    with PvesimProcess(scale=scale, time_scale=1.0, startup_timeout=180) as sim:
        print(f"  ready in {time.monotonic() - t0:.1f} s at {sim.url}", flush=True)
        url = sim.url + PATH
        root = f"PVEAPIToken={sim.token_id}={sim.token_secret}"
        with requests.Session() as s:
            for _ in range(warmup):
                r = s.get(url, headers={"Authorization": root}, verify=sim.cert, timeout=60)
                r.raise_for_status()
            items = r.json()["data"]
        kinds = {}
        for item in items:
            kinds[item["type"]] = kinds.get(item["type"], 0) + 1
        print(f"  response: {len(r.content) / 1e6:.2f} MB, {len(items)} items {kinds}", flush=True)
        for clients in (1, 4):
            result = measure(url, root, clients, seconds, sim.cert)
            report("root token (no ACL filtering)", result)
            results.append({"token": "root", **result})
        auth = limited_token(sim)
        for clients in (1, 4):
            result = measure(url, auth, clients, seconds, sim.cert)
            report("privsep token, PVEAuditor on /", result)
            results.append({"token": "privsep", **result})
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time per configuration")
    ap.add_argument("--scale", default="50,10000", help="NODES,GUESTS for pvesim --scale")
    args = ap.parse_args(argv)
    run(args.seconds, args.scale)
    return 0


try:  # collected only when pytest is pointed at this file (make bench); norecursedirs skips tests/bench
    import pytest

    @pytest.mark.bench
    def test_bench_cluster_resources():
        results = run(seconds=5.0)
        assert all(r["errors"] == 0 for r in results), results
except ImportError:  # a plain `python tests/bench/bench_pvesim.py` does not need pytest
    pass


if __name__ == "__main__":
    sys.exit(main())
