"""Writes for operations: create + enqueue, report events, run, follow a UPID, cancel, reconcile.

Every state change goes through a conditional UPDATE (`status in (pending, running)`), so a
worker, the reconciler and a cancel racing each other can never move a finished operation.

PostgreSQL is the truth, Redis only carries messages: a pending operation whose queue message
was lost (Redis restarted) is enqueued again by the reconciler, and a second delivery of the
same operation does nothing (the pending -> running claim is a conditional UPDATE).
"""

from __future__ import annotations

import copy
import logging
import uuid
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.proxmox import (
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxTaskError,
    ProxmoxValidationError,
    follow_task,
    parse_upid,
    read_new_lines,
    task_ok,
)

from . import live
from .choices import ACTIVE_STATUSES, EventLevel, OperationStatus
from .clients import client_for
from .models import Operation, OperationEvent
from .progress import EtaEstimator, ProgressParser, parser_for_task_type
from .signals import operation_finished

logger = logging.getLogger(__name__)
_UNSET: Any = object()


class OperationCancelled(Exception):
    """Raised inside a running operation once it has been cancelled; run_operation stops quietly."""


class OperationNotCancellable(Exception):
    """The operation already reached a final state."""


class QueueUnavailable(Exception):
    """The task queue (Redis) does not answer: nothing was saved, the caller may retry later."""

    status_code = 503


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def heartbeat_timeout() -> float:
    return _setting("OPERATIONS_HEARTBEAT_TIMEOUT", 90)


def pending_timeout() -> float:
    """Seconds a pending operation waits for a worker before the reconciler enqueues it again."""
    return _setting("OPERATIONS_PENDING_TIMEOUT", 120)


def poll_interval() -> float:
    return _setting("OPERATIONS_POLL_INTERVAL", 1.0)


def _celery_app():
    from datacenter.celery import app  # the project's app; imported late so models load first

    return app


# -- create ------------------------------------------------------------------------------------


def _target_fields(target) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, (tuple, list)):
        type_, id_, *rest = target
        return str(type_), str(id_), str(rest[0] if rest else id_)[:200]
    return target._meta.label_lower, str(target.pk), str(target)[:200]


def operation_create(*, kind: str, user, task_name: str, kwargs: dict | None = None, target=None,
                     title: str = "", cluster_id: int | None = None, secret: str | None = None,
                     tenant=None) -> Operation:
    """Save a pending Operation and enqueue Celery task `task_name(operation_id, **kwargs)`.

    The task is sent only when the surrounding transaction commits (never for a rolled-back
    row), with Celery task id = operation id. `target` is a model instance or (type, id[, repr]).
    `kwargs` must be JSON-serializable and never hold secrets (they are stored and queued);
    `secret` is kept encrypted on the operation (never queued) and erased when it ends.
    Raises QueueUnavailable (nothing saved) when the queue does not answer, so no request is
    accepted that only the reconciler could carry out much later. `tenant` (default: the
    target's, else the acting tenant user's) decides who else sees it.
    """
    queue_check()
    target_type, target_id, target_repr = _target_fields(target)
    if tenant is None:
        tenant = _tenant_for(user, target)
    operation = Operation.objects.create(
        kind=kind, title=title[:200], target_type=target_type, target_id=target_id,
        target_repr=target_repr, cluster_id=cluster_id, task_name=task_name,
        task_kwargs=kwargs or {}, created_by=user if getattr(user, "pk", None) else None,
        secret=secret or None, tenant_id=getattr(tenant, "pk", tenant),
    )
    OperationReporter(operation).event(f"Queued: {operation}", level=EventLevel.DEBUG)
    transaction.on_commit(lambda: _enqueue_quietly(operation))
    return operation


def _tenant_for(user, target):
    """The target's tenant (a guest of acme), else the tenant a tenant user acts in."""
    tenant_id = getattr(target, "tenant_id", None)
    if tenant_id is not None:
        return tenant_id
    from apps.permissions.policy import as_actor

    actor = as_actor(user)
    return None if actor.is_operator else actor.tenant_id


_queue_client = None


def queue_check() -> None:
    """Raise QueueUnavailable unless the broker answers a PING within a second."""
    global _queue_client
    import redis

    try:
        if _queue_client is None:
            _queue_client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1,
                                                 socket_timeout=1)
        _queue_client.ping()
    except redis.RedisError as exc:
        raise QueueUnavailable(f"the task queue (Redis) is unreachable ({exc}); nothing was queued, "
                               "try again in a moment") from exc


def _enqueue(operation: Operation) -> None:
    _celery_app().send_task(operation.task_name, args=[str(operation.pk)],
                            kwargs=operation.task_kwargs, task_id=str(operation.pk))


def _enqueue_quietly(operation: Operation) -> None:
    """On commit: a send that fails is only logged; the row is saved and pending, so the
    reconciler sends it again (the request was accepted and will be carried out)."""
    try:
        _enqueue(operation)
    except Exception:
        logger.warning("enqueue of operation %s failed; the reconciler will send it again", operation.pk,
                       exc_info=True)


# -- report ------------------------------------------------------------------------------------

_STATE_FIELDS = ["status", "progress", "eta", "error", "last_seq", "finished", "started",
                 "heartbeat_at", "log_position", "current_upid", "upids"]


class OperationReporter:
    """Writes the event log of one operation."""

    def __init__(self, operation: Operation):
        self.operation = operation

    def event(self, message: str, level: str = EventLevel.INFO, progress: float | None = None,
              eta: int | None = _UNSET, log_position: int | None = None) -> OperationEvent:
        """Save the event with the next seq (and the operation's progress/ETA/heartbeat) in one
        transaction, then push it to `operation-<id>` once committed: saved first, pushed second,
        so a client that reconnects with ?after=<seq> loses nothing."""
        op = self.operation
        now = timezone.now()
        updates: dict[str, Any] = {"last_seq": F("last_seq") + 1, "heartbeat_at": now, "updated": now}
        if progress is not None:
            updates["progress"] = max(0, min(100, int(progress)))
        if eta is not _UNSET:
            updates["eta"] = eta
        if log_position is not None:
            updates["log_position"] = log_position
        with transaction.atomic():
            # The UPDATE row lock serializes writers, so last_seq is ours until commit.
            Operation.objects.filter(pk=op.pk).update(**updates)
            op.refresh_from_db(fields=_STATE_FIELDS)
            event = OperationEvent.objects.create(
                operation=op, seq=op.last_seq, level=level, message=message,
                progress=updates.get("progress"),
            )
            snapshot = copy.copy(op)  # state as of this event, whatever the worker does next
            # Best effort: a push that fails (Redis away) never fails the operation; clients replay.
            transaction.on_commit(lambda: live.push_event(snapshot, event), robust=True)
        return event

    def heartbeat(self) -> str:
        """Mark the worker alive; returns the current status (so loops notice a cancel)."""
        Operation.objects.filter(pk=self.operation.pk).update(heartbeat_at=timezone.now())
        return Operation.objects.values_list("status", flat=True).get(pk=self.operation.pk)


def _finish(operation: Operation, status: str, *, message: str, level: str, error: str = "",
            result: dict | None = None) -> bool:
    """Move an active operation to a final state and log it; False if it was already final."""
    now = timezone.now()
    updates: dict[str, Any] = {"status": status, "finished": now, "eta": None, "error": error, "updated": now,
                               "secret": None, "resume_token": ""}  # a finished operation keeps no secret
    if status == OperationStatus.SUCCEEDED:
        updates["progress"] = 100
    if result is not None:
        updates["result"] = result
    # Final state and closing event commit together: nobody sees "finished" without its last event.
    with transaction.atomic():
        changed = Operation.objects.filter(pk=operation.pk, status__in=ACTIVE_STATUSES).update(**updates)
        operation.refresh_from_db()
        if not changed:
            return False
        OperationReporter(operation).event(message, level=level)
    # Receivers queue follow-up work; their failure (Redis away) must not undo a finished result.
    transaction.on_commit(lambda: operation_finished.send_robust(sender=Operation, operation=operation),
                          robust=True)
    return True


def _finish_cancelled(operation: Operation) -> bool:
    # Same text whoever gets there first: the cancelling request or the worker that saw the stop.
    operation.refresh_from_db(fields=["cancel_requested_by"])
    who = operation.cancel_requested_by.get_username() if operation.cancel_requested_by else ""
    return _finish(operation, OperationStatus.CANCELLED, message=f"Cancelled by {who}" if who else "Cancelled",
                   level=EventLevel.WARNING, error=f"cancelled by {who}" if who else "cancelled")


def operation_fail(*, operation: Operation, error: str) -> bool:
    """Fail an active operation with `error` (shown as is to the user)."""
    return _finish(operation, OperationStatus.FAILED, message=error, level=EventLevel.ERROR, error=error)


# -- run ---------------------------------------------------------------------------------------


def _gone_message(operation: Operation, exc: ObjectDoesNotExist) -> str:
    """'the guest web-01 no longer exists ...' for a row deleted between queueing and running."""
    from django.apps import apps as django_apps

    model = next((m for m in django_apps.get_models() if type(exc) is m.DoesNotExist), None)
    name = str(model._meta.verbose_name) if model else "object"
    if model is not None and operation.target_type == model._meta.label_lower and operation.target_repr:
        return f"the {name} {operation.target_repr} no longer exists (it was deleted after this action was queued)"
    return f"the {name} this action needs no longer exists (it was deleted after this action was queued)"


def run_operation(operation_id, fn: Callable[[Operation, OperationReporter], Any], *,
                  reattach: bool = False, resume_token: str | None = None) -> Operation | None:
    """Body of every operation Celery task: `fn(operation, reporter)` does the work.

    Guarantees: pending -> running -> succeeded | failed | cancelled, never left running by
    an exception; a ProxmoxError fails it with Proxmox's exact message; an operation that was
    cancelled (or already finished) before the worker got it is not run. `fn` may return a
    dict, stored as `result`. Exactly one delivery runs it: the pending -> running claim is a
    conditional UPDATE; a running operation is taken over only with the reconciler's
    `resume_token` (cleared by the same conditional UPDATE, so a duplicate delivery is a no-op).
    """
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None:
        logger.warning("operation %s does not exist; task ignored", operation_id)
        return None
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation.pk, status=OperationStatus.PENDING).update(
        status=OperationStatus.RUNNING, started=now, heartbeat_at=now, updated=now)
    resumed = 0
    if not claimed and resume_token:
        resumed = Operation.objects.filter(pk=operation.pk, status=OperationStatus.RUNNING,
                                           resume_token=resume_token).update(resume_token="", heartbeat_at=now)
    operation.refresh_from_db()
    if not claimed and not resumed and not (reattach and operation.status == OperationStatus.RUNNING):
        logger.info("operation %s is %s; not running it again", operation.pk, operation.status)
        return operation
    reporter = OperationReporter(operation)
    if claimed:
        reporter.event("Started")
    elif resumed:
        done = ", ".join(operation.steps_done or []) or "none"
        reporter.event(f"Resumed by a new worker at step '{operation.step or 'start'}' (steps done: {done})",
                       level=EventLevel.WARNING)
    try:
        result = fn(operation, reporter)
    except OperationCancelled:
        _finish_cancelled(operation)
    except ProxmoxError as exc:
        _finish(operation, OperationStatus.FAILED, message=str(exc), level=EventLevel.ERROR, error=str(exc))
    except ObjectDoesNotExist as exc:
        error = _gone_message(operation, exc)
        _finish(operation, OperationStatus.FAILED, message=error, level=EventLevel.ERROR, error=error)
    except Exception as exc:  # anything else is our bug: say so, never leave it running
        logger.exception("operation %s crashed", operation.pk)
        error = f"internal error: {exc.__class__.__name__}: {exc}"
        _finish(operation, OperationStatus.FAILED, message=error, level=EventLevel.ERROR, error=error)
    else:
        operation.refresh_from_db()
        warnings = operation.result.get("warnings") if isinstance(operation.result, dict) else None
        _finish(operation, OperationStatus.SUCCEEDED,
                message="Succeeded with warnings" if warnings else "Succeeded",
                level=EventLevel.WARNING if warnings else EventLevel.SUCCESS,
                result=result if isinstance(result, dict) else None)
    return operation


# -- step markers ------------------------------------------------------------------------------


def operation_step(operation: Operation, step: str) -> bool:
    """Record `step` as the one in progress; True when an earlier run already finished it (a
    resumed run then only checks it). Steps must be idempotent: a run killed mid-step repeats it."""
    if step in (operation.steps_done or []):
        return True
    Operation.objects.filter(pk=operation.pk).update(step=step, heartbeat_at=timezone.now())
    operation.step = step
    return False


def operation_step_done(operation: Operation, step: str) -> None:
    done = list(operation.steps_done or [])
    if step not in done:
        done.append(step)
    Operation.objects.filter(pk=operation.pk).update(steps_done=done, heartbeat_at=timezone.now())
    operation.steps_done = done


def steps_left(operation: Operation, steps: list[str]) -> list[str]:
    """The steps of `steps` not finished yet, in order (for 'steps not applied: ...')."""
    done = set(operation.steps_done or [])
    return [step for step in steps if step not in done]


def _line_level(text: str) -> str:
    if text.startswith("TASK ERROR") or " ERROR: " in f" {text}":
        return EventLevel.ERROR
    if text.startswith(("WARN", "TASK WARNINGS")):
        return EventLevel.WARNING
    return EventLevel.INFO


def follow_upid(operation: Operation, client, node: str | None, upid: str, *,
                progress_parser: ProgressParser | None = None, reporter: OperationReporter | None = None,
                progress_range: tuple[float, float] = (0, 100), poll: float | None = None) -> dict:
    """Follow Proxmox task `upid` to its end, saving each new log line as an event.

    Records the UPID on the operation first (so the reconciler can re-attach), resumes from
    `log_position` when the UPID is already the current one, maps the parsed task progress into
    `progress_range` and keeps an ETA. Stops the Proxmox task when the operation gets cancelled.
    Returns the final task status; raises ProxmoxTaskError with Proxmox's exitstatus on failure
    and OperationCancelled when cancelled.
    """
    node = node or parse_upid(upid).node
    parser = progress_parser or parser_for_task_type(parse_upid(upid).type)
    reporter = reporter or OperationReporter(operation)
    if operation.current_upid != upid:
        upids = list(operation.upids or [])
        if upid not in upids:
            upids.append(upid)
        Operation.objects.filter(pk=operation.pk).update(upids=upids, current_upid=upid, log_position=0,
                                                          heartbeat_at=timezone.now())
        operation.upids, operation.current_upid, operation.log_position = upids, upid, 0
        reporter.event(f"Proxmox task {upid}", level=EventLevel.DEBUG)
    low, high = progress_range
    eta = EtaEstimator()
    stop_sent = False

    def on_line(n: int, text: str) -> None:
        percent = parser(text)
        progress = eta_s = _UNSET
        if percent is not None:
            progress = low + (high - low) * percent / 100.0
            eta_s = eta.update(progress)
        reporter.event(text, level=_line_level(text), log_position=n,
                       progress=None if progress is _UNSET else progress, eta=eta_s)

    def on_poll(status: dict) -> None:
        nonlocal stop_sent
        if reporter.heartbeat() == OperationStatus.CANCELLED and not stop_sent:
            # Cancelled between our POST and saving the UPID: the cancel could not stop it, we do.
            client.stop_task(node, upid)
            stop_sent = True

    if reporter.heartbeat() == OperationStatus.CANCELLED:
        on_poll({})
    status = follow_task(client, node, upid, on_line, start=operation.log_position,
                         poll=poll if poll is not None else poll_interval(), on_poll=on_poll)
    operation.refresh_from_db(fields=_STATE_FIELDS + ["cancel_requested_by"])
    if operation.status == OperationStatus.CANCELLED or operation.cancel_requested_by_id:
        raise OperationCancelled()
    exitstatus = status.get("exitstatus")
    if not task_ok(exitstatus):
        raise ProxmoxTaskError(exitstatus or "unexpected status", upid=upid, exitstatus=exitstatus)
    if (exitstatus or "").startswith("WARNINGS"):
        result = dict(operation.result or {}, warnings=exitstatus)
        Operation.objects.filter(pk=operation.pk).update(result=result)
        operation.result = result
    return status


# -- cancel ------------------------------------------------------------------------------------


def operation_cancel(*, operation: Operation, user) -> Operation:
    """Stop the operation's Proxmox task (DELETE /nodes/{node}/tasks/{upid}) and mark it cancelled.

    Raises PermissionDenied if `user` may not cancel it, OperationNotCancellable if it already
    finished, ProxmoxError if Proxmox refuses to stop the task (the operation is then unchanged).
    A pending operation is cancelled before any worker runs it.
    """
    from apps.permissions.policy import check

    check(user, "operation.cancel", operation)  # 404 unseen, 403 (audited) seen but not allowed
    operation.refresh_from_db()
    if not operation.is_active:
        raise OperationNotCancellable(f"operation is already {operation.status}")
    # Mark the request first: a worker that sees the task stop then reports "cancelled", not "failed".
    if not Operation.objects.filter(pk=operation.pk, status__in=ACTIVE_STATUSES).update(cancel_requested_by=user):
        operation.refresh_from_db()
        raise OperationNotCancellable(f"operation is already {operation.status}")
    if operation.current_upid:
        upid = operation.current_upid
        client = client_for(operation.cluster_id)
        try:
            client.stop_task(parse_upid(upid).node, upid)
        except Exception:
            Operation.objects.filter(pk=operation.pk).update(cancel_requested_by=None)
            raise
        finally:
            client.close()
    _finish_cancelled(operation)
    try:
        _celery_app().control.revoke(str(operation.pk))
    except Exception:  # a pending task that still runs sees the cancelled status and skips
        logger.warning("revoke of operation %s failed", operation.pk, exc_info=True)
    return operation


# -- reconcile ---------------------------------------------------------------------------------


def _finish_from_task(operation: Operation, status: dict) -> bool:
    exitstatus = status.get("exitstatus") or "unexpected status"
    if task_ok(exitstatus):
        warn = exitstatus.startswith("WARNINGS")
        return _finish(operation, OperationStatus.SUCCEEDED,
                       message=f"Succeeded ({exitstatus})" if warn else "Succeeded",
                       level=EventLevel.WARNING if warn else EventLevel.SUCCESS)
    return operation_fail(operation=operation, error=exitstatus)


# Task names whose task takes `resume_token=` and resumes from its step markers (register_resumable).
_RESUMABLE: set[str] = set()
# kind -> fn(operation) -> bool: reconciles a failed operation once a node it lost is back.
_NODE_RETURN: dict[str, Callable[[Operation], bool]] = {}


def register_resumable(task_name: str) -> None:
    """The task `task_name(operation_id, **task_kwargs, resume_token=...)` resumes a running
    operation from its step markers; the reconciler hands it such operations whose worker died."""
    _RESUMABLE.add(task_name)


def register_node_return(kind: str, fn: Callable[[Operation], bool]) -> None:
    """For failed operations of `kind` whose result has `await_node` (a node went away under
    them): the reconciler calls fn(operation) each run until it returns True (reconciled)."""
    _NODE_RETURN[kind] = fn


def _requeue(operation: Operation, reporter: OperationReporter) -> str:
    reporter.event(f"No worker took this operation within {int(pending_timeout())} s (its queue message may "
                   "have been lost, e.g. a Redis restart): queued again", level=EventLevel.WARNING)
    _enqueue(operation)
    return "requeued"


def _resume(operation: Operation, reporter: OperationReporter) -> str:
    """Hand a running, resumable operation whose worker vanished to a new worker (by token)."""
    if operation.current_upid:
        client = client_for(operation.cluster_id)
        try:  # an unreachable cluster: keep it, try again next run
            client.task_status(parse_upid(operation.current_upid).node, operation.current_upid)
        except ProxmoxNotFound:
            pass
        except ProxmoxError as exc:
            logger.warning("reconcile of operation %s: %s", operation.pk, exc)
            return "unreachable"
        finally:
            client.close()
    token = uuid.uuid4().hex
    now = timezone.now()
    if not Operation.objects.filter(pk=operation.pk, status=OperationStatus.RUNNING).update(
            resume_token=token, heartbeat_at=now):
        return "finished"
    reporter.event(f"Worker lost (no heartbeat for {int(heartbeat_timeout())} s) at step "
                   f"'{operation.step or 'start'}'; a new worker resumes it", level=EventLevel.WARNING)
    _celery_app().send_task(operation.task_name, args=[str(operation.pk)],
                            kwargs={**(operation.task_kwargs or {}), "resume_token": token})
    return "resumed"


def _reconcile_one(operation: Operation) -> str:
    reporter = OperationReporter(operation)
    if operation.status == OperationStatus.PENDING and not operation.current_upid:
        return _requeue(operation, reporter)
    if operation.task_name in _RESUMABLE:
        return _resume(operation, reporter)
    if not operation.current_upid:
        error = (f"the worker stopped (no heartbeat for {int(heartbeat_timeout())} s) before Proxmox "
                 "returned a task id; nothing to re-attach to")
        operation_fail(operation=operation, error=error)
        try:
            _celery_app().control.revoke(str(operation.pk))
        except Exception:
            logger.warning("revoke of operation %s failed", operation.pk, exc_info=True)
        return "failed"
    upid = operation.current_upid
    node = parse_upid(upid).node
    client = client_for(operation.cluster_id)
    try:
        status = client.task_status(node, upid)
        if status.get("status") != "stopped":
            # Claim it (heartbeat + token) so neither the next reconcile nor a duplicate delivery
            # starts a second follower.
            token = uuid.uuid4().hex
            Operation.objects.filter(pk=operation.pk).update(
                status=OperationStatus.RUNNING, heartbeat_at=timezone.now(), resume_token=token,
                started=operation.started or timezone.now())
            reporter.event(f"Worker lost; re-attaching to Proxmox task {upid}", level=EventLevel.WARNING)
            _celery_app().send_task("operations.operation_reattach", args=[str(operation.pk)],
                                    kwargs={"resume_token": token})
            return "reattached"
        for line in read_new_lines(client, node, upid, operation.log_position):
            reporter.event(line["t"], level=_line_level(line["t"]), log_position=line["n"])
        _finish_from_task(operation, status)
        return "finished"
    except (ProxmoxNotFound, ProxmoxValidationError) as exc:
        operation_fail(operation=operation, error=f"Proxmox no longer knows task {upid}: {exc}")
        return "failed"
    except ProxmoxError as exc:  # unreachable cluster: keep it, try again next run
        logger.warning("reconcile of operation %s: %s", operation.pk, exc)
        return "unreachable"
    finally:
        client.close()


def operation_reconcile(*, now=None) -> dict[str, int]:
    """Find operations whose worker vanished (or whose queue message was lost) and carry them on.

    Pending with no worker for OPERATIONS_PENDING_TIMEOUT s: enqueued again (never failed for
    it; a duplicate delivery is harmless). Running and no heartbeat for
    OPERATIONS_HEARTBEAT_TIMEOUT s: a resumable task (register_resumable) is handed to a new
    worker that resumes from its step; otherwise, if Proxmox still runs the task, re-attach
    (operations.operation_reattach); if it stopped, save the missing log lines and finish from
    its exitstatus; without a UPID: failed with the reason. Then failed operations waiting for a
    node to return are reconciled (register_node_return). Idempotent; safe to run concurrently
    (rows are claimed with SKIP LOCKED). Returns counts per outcome.
    """
    now = now or timezone.now()
    stale_beat = now - timedelta(seconds=heartbeat_timeout())
    stale_pending = now - timedelta(seconds=pending_timeout())
    # heartbeat_at of a pending operation = when it was (last) queued
    candidates = Operation.objects.filter(
        Q(status=OperationStatus.RUNNING) & (Q(heartbeat_at__lt=stale_beat) | Q(heartbeat_at__isnull=True))
        | Q(status=OperationStatus.PENDING) & (Q(heartbeat_at__lt=stale_pending)
                                               | Q(heartbeat_at__isnull=True, created__lt=stale_pending))
    ).values_list("pk", flat=True)
    counts: dict[str, int] = {}
    for pk in list(candidates):
        with transaction.atomic():
            operation = Operation.objects.select_for_update(skip_locked=True).filter(
                pk=pk, status__in=ACTIVE_STATUSES).first()
            if operation is None:
                continue
            # Re-check under the lock: a worker may have beaten since the scan.
            if operation.status == OperationStatus.RUNNING and operation.heartbeat_at and \
                    operation.heartbeat_at >= stale_beat:
                continue
            if operation.status == OperationStatus.PENDING and operation.heartbeat_at and \
                    operation.heartbeat_at >= stale_pending:
                continue
            Operation.objects.filter(pk=pk).update(heartbeat_at=now)  # claim for this run
        try:
            outcome = _reconcile_one(operation)
        except Exception:
            logger.exception("reconcile of operation %s crashed", pk)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    for operation in Operation.objects.filter(status=OperationStatus.FAILED, kind__in=list(_NODE_RETURN),
                                              result__has_key="await_node").order_by("finished")[:50]:
        try:
            if _NODE_RETURN[operation.kind](operation):
                result = {k: v for k, v in (operation.result or {}).items() if k != "await_node"}
                Operation.objects.filter(pk=operation.pk).update(result=result)
                counts["node-returned"] = counts.get("node-returned", 0) + 1
        except ProxmoxError as exc:  # still unreachable: next run
            logger.info("operation %s still waits for its node: %s", operation.pk, exc)
        except Exception:
            logger.exception("node-return reconcile of operation %s crashed", operation.pk)
    return counts


def operation_reattach(operation_id, resume_token: str | None = None) -> Operation | None:
    """Follow the current UPID of a running operation whose worker vanished, to its end."""
    operation = Operation.objects.filter(pk=operation_id).first()
    if operation is None or not operation.is_active or not operation.current_upid:
        return operation

    def resume(op: Operation, reporter: OperationReporter):
        client = client_for(op.cluster_id)
        try:
            follow_upid(op, client, None, op.current_upid, reporter=reporter)
        finally:
            client.close()

    return run_operation(operation_id, resume, reattach=resume_token is None, resume_token=resume_token)


# -- the generic demo/test kind -----------------------------------------------------------------


def operation_follow_task(*, user, cluster_id: int | None, upid: str, title: str = "") -> Operation:
    """Follow an existing Proxmox task as an operation (kind `task.follow`): the pipeline
    end to end without knowing what the task does. Raises ValueError for a malformed UPID."""
    info = parse_upid(upid)
    return operation_create(
        kind="task.follow", user=user, task_name="operations.task_follow", kwargs={"upid": upid},
        target=("proxmox.task", upid, f"{info.type} {info.id}".strip()), cluster_id=cluster_id,
        title=title or f"Proxmox task {info.type} {info.id} on {info.node}".replace("  ", " "),
    )
