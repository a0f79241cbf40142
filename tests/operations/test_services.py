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


def test_reconcile_requeues_a_pending_operation_no_worker_took(operator, cluster_clients):
    # The database is the truth: a pending operation whose queue message is gone is sent again.
    old = make_operation(operator, task_name="tests.unregistered")
    hour_ago = timezone.now() - timedelta(hours=1)
    Operation.objects.filter(pk=old.pk).update(created=hour_ago, heartbeat_at=hour_ago)
    fresh = make_operation(operator)
    counts = operation_reconcile()
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert counts == {"requeued": 1}
    assert old.status == OperationStatus.PENDING and old.error == ""
    assert "queued again" in old.events.last().message
    assert old.heartbeat_at > hour_ago  # the timer restarts: not sent again at the next run
    assert operation_reconcile() == {}
    assert fresh.status == OperationStatus.PENDING


def test_a_second_delivery_of_the_same_operation_does_nothing(operator):
    # At-least-once delivery (re-queued by the reconciler, re-delivered by Redis): one run only.
    operation = make_operation(operator)
    runs = []
    run_operation(operation.pk, lambda op, reporter: runs.append(op.pk))
    run_operation(operation.pk, lambda op, reporter: runs.append(op.pk))
    operation.refresh_from_db()
    assert runs == [operation.pk] and operation.status == OperationStatus.SUCCEEDED


def test_a_running_operation_is_taken_over_only_with_the_reconcilers_token_and_only_once(operator):
    stale = timezone.now() - timedelta(hours=1)
    operation = make_operation(operator, status=OperationStatus.RUNNING, started=stale, heartbeat_at=stale,
                               resume_token="tok-1", step="config", steps_done=["clone"])
    runs = []

    def body(op, reporter):
        runs.append(op.step)

    run_operation(operation.pk, body)  # a plain re-delivery: the operation is someone else's
    run_operation(operation.pk, body, resume_token="other")
    assert runs == []
    run_operation(operation.pk, body, resume_token="tok-1")
    run_operation(operation.pk, body, resume_token="tok-1")  # the same hand-over delivered twice
    operation.refresh_from_db()
    assert runs == ["config"] and operation.status == OperationStatus.SUCCEEDED
    assert any(m.startswith("Resumed by a new worker at step 'config' (steps done: clone)")
               for m in operation.events.values_list("message", flat=True))


def test_the_secret_lives_encrypted_with_the_operation_and_is_erased_when_it_ends(operator):
    from django.db import connection

    operation = make_operation(operator, secret="root-pw-123")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM operations_operation WHERE id = %s", [operation.pk])
        stored = cursor.fetchone()[0]
    assert stored and "root-pw-123" not in stored  # a Fernet token, not the password
    seen = []
    run_operation(operation.pk, lambda op, reporter: seen.append(Operation.objects.get(pk=op.pk).secret))
    operation.refresh_from_db()
    assert seen == ["root-pw-123"] and operation.secret is None


def test_a_row_deleted_after_queueing_fails_saying_it_no_longer_exists(operator):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    operation = make_operation(operator, target_type="auth.user", target_repr="ghost")
    run_operation(operation.pk, lambda op, reporter: User.objects.get(pk=-1))
    operation.refresh_from_db()
    assert operation.status == OperationStatus.FAILED
    assert operation.error == "the user ghost no longer exists (it was deleted after this action was queued)"
