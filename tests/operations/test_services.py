"""run_operation, the reporter and the reconciler on the real database (no worker needed)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.operations.choices import OperationStatus
from apps.operations.models import Operation
from apps.operations.services import (
    OperationReporter,
    operation_reconcile,
    run_operation,
)

pytestmark = pytest.mark.django_db


def make_operation(user=None, **fields) -> Operation:
    return Operation.objects.create(kind="test.kind", title="Test operation", created_by=user, **fields)


def seqs(operation):
    return list(operation.events.values_list("seq", flat=True))


def test_reporter_numbers_events_and_moves_progress(operator):
    operation = make_operation(operator)
    reporter = OperationReporter(operation)
    reporter.event("one")
    reporter.event("two", progress=40, eta=30)
    reporter.event("three", level="warning")
    operation.refresh_from_db()
    assert seqs(operation) == [1, 2, 3]
    assert (operation.last_seq, operation.progress, operation.eta) == (3, 40, 30)
    assert operation.heartbeat_at is not None
    assert operation.events.get(seq=3).level == "warning"


def test_run_operation_success_goes_pending_running_succeeded(operator):
    operation = make_operation(operator)
    seen = {}

    def body(op, reporter):
        seen["status"] = Operation.objects.get(pk=op.pk).status
        reporter.event("half way", progress=50)
        return {"answer": 42}

    run_operation(operation.pk, body)
    operation.refresh_from_db()
    assert seen["status"] == OperationStatus.RUNNING
    assert operation.status == OperationStatus.SUCCEEDED
    assert operation.progress == 100 and operation.result == {"answer": 42}
    assert operation.started and operation.finished
    assert [e.message for e in operation.events.all()] == ["Started", "half way", "Succeeded"]


def test_run_operation_fails_with_proxmox_exact_message(operator, pve):
    operation = make_operation(operator)
    run_operation(operation.pk, lambda op, reporter: pve.get("nodes/nosuchnode/tasks"))
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED
    assert operation.error.startswith("hostname lookup 'nosuchnode' failed")
    assert operation.events.last().message == operation.error
    assert operation.events.last().level == "error"


def test_run_operation_never_leaves_a_crash_running(operator):
    operation = make_operation(operator)

    def body(op, reporter):
        raise KeyError("boom")

    run_operation(operation.pk, body)
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED
    assert operation.error == "internal error: KeyError: 'boom'"


def test_run_operation_skips_an_operation_cancelled_before_it_ran(operator):
    operation = make_operation(operator, status=OperationStatus.CANCELLED)
    ran = []
    run_operation(operation.pk, lambda op, reporter: ran.append(1))
    operation.refresh_from_db()
    assert ran == [] and operation.status == OperationStatus.CANCELLED


def test_reconcile_fails_a_running_operation_without_upid_and_stale_heartbeat(operator, cluster_clients):
    stale = timezone.now() - timedelta(hours=1)
    lost = make_operation(operator, status=OperationStatus.RUNNING, started=stale, heartbeat_at=stale)
    alive = make_operation(operator, status=OperationStatus.RUNNING, started=stale, heartbeat_at=timezone.now())
    counts = operation_reconcile()
    lost.refresh_from_db()
    alive.refresh_from_db()
    assert counts == {"failed": 1}
    assert lost.status == OperationStatus.FAILED
    assert "before Proxmox returned a task id" in lost.error
    assert alive.status == OperationStatus.RUNNING


def test_reconcile_fails_a_pending_operation_no_worker_took(operator, cluster_clients):
    old = make_operation(operator)
    Operation.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(hours=1))
    fresh = make_operation(operator)
    operation_reconcile()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == OperationStatus.FAILED
    assert old.error.startswith("no worker picked this operation up within")
    assert fresh.status == OperationStatus.PENDING
