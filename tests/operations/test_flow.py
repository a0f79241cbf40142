"""Operations end to end: pvesim over HTTPS, a real Celery worker on Redis, the real ASGI app
with the Redis channel layer. A Proxmox task is followed, saved event by event, streamed."""

import contextlib
from datetime import timedelta

import pytest
from celery.result import AsyncResult
from django.utils import timezone
from rest_framework.test import APIClient

from apps.operations.choices import FINAL_STATUSES, OperationStatus
from apps.operations.models import Operation
from apps.operations.services import operation_follow_task, operation_reconcile

from .conftest import json_frames, wait_for, wait_task_stopped, ws_session

pytestmark = pytest.mark.django_db(transaction=True)

NODE, VMID = "pve3", 104  # stopped in the demo scenario


def start_vm(pve) -> str:
    return pve.post(f"nodes/{NODE}/qemu/{VMID}/status/start")


def full_log(pve, upid) -> list[str]:
    return [line["t"] for line in pve.task_log(NODE, upid, start=0, limit=0)]


def wait_final(operation) -> Operation:
    def final():
        operation.refresh_from_db()
        return operation.status in FINAL_STATUSES

    wait_for(final)
    return operation


@contextlib.contextmanager
def slow_time(pvesim, scale=0.5):
    """Slow the simulator so a task is still running while the test acts on it."""
    previous = pvesim.admin("GET", "/state")["time_scale"]
    pvesim.admin("POST", "/time-scale", scale=scale)
    try:
        yield
    finally:
        pvesim.admin("POST", "/time-scale", scale=previous)


def stale_running_operation(user, upid) -> Operation:
    """What a killed worker leaves behind: running, a UPID, no heartbeat for an hour."""
    old = timezone.now() - timedelta(hours=1)
    return Operation.objects.create(kind="task.follow", title="Orphan", created_by=user, status=OperationStatus.RUNNING,
                                    upids=[upid], current_upid=upid, started=old, heartbeat_at=old)


def test_a_proxmox_task_is_followed_saved_in_order_and_streamed(celery_worker, pve, cluster_clients, operator):
    upid = start_vm(pve)
    operation = operation_follow_task(user=operator, cluster_id=None, upid=upid)

    accepted, _, frames = ws_session(f"/ws/operations/{operation.pk}/", user=operator)  # until the final event

    wait_final(operation)
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    assert operation.progress == 100 and operation.upids == [upid]
    events = list(operation.events.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    log = full_log(pve, upid)
    assert log[-1] == "TASK OK"
    messages = [e.message for e in events]
    assert [m for m in messages if m in log] == log  # every Proxmox line once, in order
    assert messages[-1] == "Succeeded"
    # The websocket carried exactly the saved events, same seq, same text.
    assert accepted
    streamed = json_frames(frames)
    assert [(f["seq"], f["message"]) for f in streamed] == [(e.seq, e.message) for e in events]
    assert streamed[-1]["operation"]["status"] == "succeeded"
    # Celery task id = operation id (its result lands just after the operation's final commit).
    wait_for(lambda: AsyncResult(str(operation.pk)).state == "SUCCESS")


def test_a_failed_task_fails_the_operation_with_proxmox_message(celery_worker, pve, pvesim, cluster_clients,
                                                                 operator):
    message = "VM 104 qmp command 'cont' failed - got timeout"
    pvesim.admin("POST", "/faults/task-failure", type="qmstart", message=message)
    upid = start_vm(pve)
    operation = wait_final(operation_follow_task(user=operator, cluster_id=None, upid=upid))
    assert operation.status == OperationStatus.FAILED
    assert operation.error == message
    assert f"TASK ERROR: {message}" in [e.message for e in operation.events.all()]


def test_cancel_stops_the_proxmox_task(celery_worker, pve, pvesim, cluster_clients, operator):
    with slow_time(pvesim, scale=0.2):
        upid = start_vm(pve)
        operation = operation_follow_task(user=operator, cluster_id=None, upid=upid)
        wait_for(lambda: Operation.objects.filter(pk=operation.pk, current_upid=upid,
                                                  status=OperationStatus.RUNNING).exists())
        api = APIClient()
        api.force_authenticate(operator)
        response = api.post(f"/api/v1/operations/{operation.pk}/cancel/")
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "cancelled"
        status = wait_task_stopped(pve, upid)
    assert status["exitstatus"] != "OK"  # Proxmox stopped it
    wait_for(lambda: AsyncResult(str(operation.pk)).ready())  # the worker saw it and let go
    operation.refresh_from_db()
    assert operation.status == OperationStatus.CANCELLED
    assert operation.error == "cancelled by operator"


def test_reconciler_finishes_an_orphan_from_the_task_real_result(pve, pvesim, cluster_clients, operator):
    ok_upid = start_vm(pve)
    wait_task_stopped(pve, ok_upid)
    wait_task_stopped(pve, pve.post(f"nodes/{NODE}/qemu/{VMID}/status/stop"))
    pvesim.admin("POST", "/faults/task-failure", type="qmstart", message="start failed: QEMU exited with code 1")
    bad_upid = wait_task_stopped(pve, start_vm(pve))["upid"]
    ok = stale_running_operation(operator, ok_upid)
    bad = stale_running_operation(operator, bad_upid)

    counts = operation_reconcile()

    assert counts == {"finished": 2}
    ok.refresh_from_db()
    bad.refresh_from_db()
    assert ok.status == OperationStatus.SUCCEEDED
    assert [e.message for e in ok.events.all() if e.message in full_log(pve, ok_upid)] == full_log(pve, ok_upid)
    assert bad.status == OperationStatus.FAILED
    assert bad.error == "start failed: QEMU exited with code 1"


def test_reconciler_reattaches_to_a_task_that_still_runs(celery_worker, pve, pvesim, cluster_clients, operator):
    with slow_time(pvesim, scale=0.5):
        upid = start_vm(pve)
        orphan = stale_running_operation(operator, upid)
        assert pve.task_status(NODE, upid)["status"] == "running"
        assert operation_reconcile() == {"reattached": 1}
        assert operation_reconcile() == {}  # claimed: no second follower
        wait_final(orphan)
    assert orphan.status == OperationStatus.SUCCEEDED, orphan.error
    messages = [e.message for e in orphan.events.all()]
    assert messages.count("TASK OK") == 1
    assert [m for m in messages if m in full_log(pve, upid)] == full_log(pve, upid)


def test_clone_progress_and_eta_come_from_the_task_log(celery_worker, pve, cluster_clients, operator):
    upid = pve.post(f"nodes/{NODE}/qemu/{VMID}/clone", newid=150, full=1, name="clone-of-db")
    operation = operation_follow_task(user=operator, cluster_id=None, upid=upid)

    _, _, frames = ws_session(f"/ws/operations/{operation.pk}/", user=operator)

    wait_final(operation)
    assert operation.status == OperationStatus.SUCCEEDED, operation.error
    progress = [e.progress for e in operation.events.order_by("seq") if e.progress is not None]
    assert progress[0] < 50 < progress[-2] and progress[-1] == 100  # from `transferred X of Y (P%)`
    assert progress == sorted(progress)
    streamed = json_frames(frames)
    running_etas = [f["operation"]["eta"] for f in streamed if f["operation"]["status"] == "running"]
    assert any(eta is not None for eta in running_etas)
    assert streamed[-1]["operation"]["eta"] is None
