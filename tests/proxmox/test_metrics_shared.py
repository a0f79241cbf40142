"""Proxmox calls made in another process (a Celery worker) show on this process's /metrics."""

import os
import subprocess
import sys

from django.conf import settings

from apps.proxmox import metrics


def test_calls_recorded_by_another_process_are_counted_here():
    template = "/nodes/{node}/qemu/{vmid}/status/start"
    before = {line for line in metrics.prometheus_lines() if template in line and "calls_total" in line}
    # The child uses this run's Redis key prefix (settings derive it from the pid under pytest).
    code = (
        "import django; django.setup();"
        f"from django.conf import settings; settings.TEST_RUN_ID = {settings.TEST_RUN_ID!r};"
        "from apps.proxmox import metrics;"
        "[metrics.record_call('POST', '/nodes/pve9/qemu/4242/status/start') for _ in range(3)]"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "datacenter.settings"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=settings.BASE_DIR, timeout=60)
    after = [line for line in metrics.prometheus_lines() if template in line and "calls_total" in line]
    assert after, "the worker's calls are missing from /metrics"
    count = int(after[0].rsplit(" ", 1)[1])
    previous = int(next(iter(before)).rsplit(" ", 1)[1]) if before else 0
    assert count == previous + 3
