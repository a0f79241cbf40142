"""A worker killed in the middle of giving a VM its GPU (and of taking it away): the reconciler
hands the operation to a new worker, which resumes from its step markers. The config write is not
doubled, the allocation is the one made with the operation (never a second, never lost), and the
card is accounted for exactly once.

Real parts only: pvesim (a latency fault on the config route keeps the write in flight while the
worker is killed), PostgreSQL, and `celery worker` subprocesses on a private Redis (see
tests/operations/test_faults.py)."""

from __future__ import annotations

import pytest

from apps.gpus.models import GpuAllocation
from apps.gpus.placement import free_by_node
from apps.guests.models import Guest
from apps.operations.models import Operation
from tests.fixtures import sync, wait_for, wait_task
from tests.operations.test_faults import history, ops_final, private_queue, reconcile_until  # noqa: F401

from .test_allocations import gpus, profile  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG_ROUTE = "/nodes/{node}/qemu/{vmid}/config"


def config_writes(pvesim) -> int:
    return sum(r["count"] for r in pvesim.counters()["requests"] if r["path"] == CONFIG_ROUTE and r["method"] == "PUT")


def kill_while(private_queue, pvesim, worker, op_id: str, message: str) -> None:
    """Kill `worker` once the operation says `message` (its config PUT is then on its way, held by
    pvesim's latency on the config route), then start a new worker and reconcile until it ends."""
    pvesim.admin("POST", "/faults/latency", seconds=3, path=CONFIG_ROUTE)
    try:
        wait_for(lambda: Operation.objects.get(pk=op_id).events.filter(message__startswith=message).exists(),
                 timeout=60)
        # The event is saved just before the request leaves; on a loaded machine the kill could
        # otherwise come first. pvesim counts a request when it arrives, before the latency.
        wait_for(lambda: config_writes(pvesim) >= 1, timeout=30, interval=0.05)
        worker.kill()
    finally:
        pvesim.admin("POST", "/faults/clear")
    private_queue.worker()
    reconcile_until(lambda: ops_final([op_id]), timeout=120)


def test_a_worker_killed_mid_attach_and_mid_detach_resumes_without_doubling_or_leaking(gpus, pve, pvesim, api,
                                                                                      operator, private_queue):
    four_q = profile(gpus, operator, preset="a16-4q")
    wait_task(pve, pve.post("nodes/pve2/qemu", vmid=781, name="render-02", memory=2048, cores=2, scsi0="ceph-rbd:8"))
    sync(gpus)
    guest = Guest.objects.get(cluster=gpus, vmid=781)
    pvesim.admin("DELETE", "/counters")

    # -- attach: killed while its hostpci0 write is in flight ---------------------------------------
    op = api.post("/api/v1/gpu-allocations/attach/", {"guest": guest.pk, "gpu_profile": four_q.pk}, expect=202)
    kill_while(private_queue, pvesim, private_queue.worker(), op["id"], "Writing hostpci0")
    done = Operation.objects.get(pk=op["id"])
    messages = history(done)
    assert done.status == "succeeded", (done.error, messages, private_queue.workers[-1].tail())
    assert any("a new worker resumes it" in m for m in messages)
    assert any(m.startswith("Resumed by a new worker at step 'config'") for m in messages), messages
    # The dead worker's PUT, held by pvesim's latency, landed after its death: the new one saw it.
    assert "hostpci0 of VM 781 (render-02) already holds A16 4Q vGPU (an earlier run wrote it)" in messages
    assert done.steps_done == ["config", "sync"]
    config = pve.get("nodes/pve2/qemu/781/config")
    assert config["hostpci0"] == "mapping=vgpu-a16,mdev=nvidia-747,pcie=1"
    assert not [k for k in config if k.startswith("hostpci") and k != "hostpci0"]  # not given twice
    assert config_writes(pvesim) == 1  # written once
    held = GpuAllocation.objects.filter(profile=four_q)
    assert [(a.vmid, a.state, a.slots, str(a.operation_id)) for a in held] == [(781, "active", "hostpci0", op["id"])]
    assert free_by_node(four_q) == {"pve2": 3}

    # -- detach: killed while its delete is in flight ---------------------------------------------
    pvesim.admin("DELETE", "/counters")
    op = api.post(f"/api/v1/gpu-allocations/{held.get().pk}/detach/", expect=202)
    kill_while(private_queue, pvesim, private_queue.workers[-1], op["id"], "Removing hostpci0")
    done = Operation.objects.get(pk=op["id"])
    messages = history(done)
    assert done.status == "succeeded", (done.error, messages, private_queue.workers[-1].tail())
    assert any(m.startswith("Resumed by a new worker at step 'config'") for m in messages), messages
    assert done.steps_done == ["config", "release"]
    assert "VM 781 (render-02) no longer holds A16 4Q vGPU in its configuration" in messages
    assert "hostpci0" not in pve.get("nodes/pve2/qemu/781/config")
    assert config_writes(pvesim) == 1
    assert not GpuAllocation.objects.exists() and free_by_node(four_q) == {"pve2": 4}  # freed once, not leaked
