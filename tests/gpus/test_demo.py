"""`make demo` shows GPUs on first run: demo_setup registers the simulator with its root@pam
credential and defines the demo GPU profiles (demo_gpus), whose holders the map names at once."""

import json

import pytest
from django.core.management import call_command

from apps.gpus.models import GpuAllocation, GpuProfile
from apps.gpus.placement import free_by_node
from apps.nodes.models import Cluster
from tests.nodes.conftest import sim  # noqa: F401  (the session's pvesim, reset)

pytestmark = pytest.mark.django_db


def test_demo_setup_defines_the_gpu_profiles_once(sim, tmp_path, settings, capsys, client):
    settings.VAR_DIR = tmp_path
    ready = tmp_path / "pvesim.json"
    ready.write_text(json.dumps(sim.info))
    call_command("demo_setup", "--pvesim", str(ready))
    first = capsys.readouterr().out
    cluster = Cluster.objects.get()
    assert cluster.has_root_credential and sim.root_password not in first
    profiles = {p.name: p for p in GpuProfile.objects.filter(cluster=cluster)}
    assert {name: p.kind for name, p in profiles.items()} == {
        "L40S full card": "passthrough", "L40S shared": "lxc", "A16 4Q vGPU": "mdev"}
    assert {t.slug for t in profiles["A16 4Q vGPU"].tenants.all()} == {"acme", "globex"}
    # The scenario's VMs 102 (a whole L40S) and 103 (an A16-4Q slice) are adopted: the map names them.
    held = dict(GpuAllocation.objects.values_list("vmid", "profile__name"))
    assert held == {102: "L40S full card", 103: "A16 4Q vGPU"}
    assert free_by_node(profiles["A16 4Q vGPU"]) == {"pve2": 3}
    assert free_by_node(profiles["L40S shared"]) == {"pve1": 8}
    assert free_by_node(profiles["L40S full card"]) == {"pve1": 0}
    page = client.get("/gpus/").content.decode()
    assert "ml-train-01" in page and "vdi-01" in page
    # The wizard offers them, the container profile included (the credential is there).
    page = client.get("/guests/create/ct/").content.decode()
    assert "L40S shared — 8 free" in page

    call_command("demo_setup", "--pvesim", str(ready))
    assert GpuProfile.objects.filter(cluster=cluster).count() == 3
    assert GpuAllocation.objects.count() == 2
