"""REST API and websocket: scoping, events by seq, cancel, constant query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.operations.choices import OperationStatus
from apps.operations.models import Operation
from apps.operations.services import OperationReporter

from .conftest import json_frames, ws_session

pytestmark = pytest.mark.django_db


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def finished_operation(user, n_events=5) -> Operation:
    operation = Operation.objects.create(kind="test.kind", title="Finished", created_by=user,
                                         status=OperationStatus.RUNNING)
    reporter = OperationReporter(operation)
    for i in range(1, n_events):
        reporter.event(f"line {i}", progress=i * 10)
    Operation.objects.filter(pk=operation.pk).update(status=OperationStatus.SUCCEEDED, progress=100)
    reporter.event("Succeeded", level="success")
    operation.refresh_from_db()
    return operation


def test_list_is_scoped_operators_see_all_members_their_own(operator, member):
    mine = finished_operation(member)
    theirs = finished_operation(operator)
    ids = {row["id"] for row in api_as(operator).get("/api/v1/operations/").json()["results"]}
    assert {str(mine.pk), str(theirs.pk)} <= ids
    ids = {row["id"] for row in api_as(member).get("/api/v1/operations/").json()["results"]}
    assert ids == {str(mine.pk)}
    assert api_as(member).get(f"/api/v1/operations/{theirs.pk}/").status_code == 404
    assert api_as(member).get(f"/api/v1/operations/{theirs.pk}/events/").status_code == 404
    assert api_as(member).post(f"/api/v1/operations/{theirs.pk}/cancel/").status_code == 404
    assert APIClient().get("/api/v1/operations/").status_code in (401, 403)


def test_list_filters_by_status_and_kind(operator):
    done = finished_operation(operator)
    pending = Operation.objects.create(kind="other.kind", created_by=operator)
    rows = api_as(operator).get("/api/v1/operations/", {"status": "pending"}).json()["results"]
    assert [row["id"] for row in rows] == [str(pending.pk)]
    rows = api_as(operator).get("/api/v1/operations/", {"kind": "test.kind"}).json()["results"]
    assert [row["id"] for row in rows] == [str(done.pk)]
    response = api_as(operator).get("/api/v1/operations/", {"status": "nonsense"})
    assert response.status_code == 400 and "status" in response.json()["errors"]


def test_detail_and_events_after_seq(operator):
    operation = finished_operation(operator, n_events=6)
    client = api_as(operator)
    detail = client.get(f"/api/v1/operations/{operation.pk}/").json()
    assert detail["status"] == "succeeded" and detail["last_seq"] == 6
    assert detail["websocket"] == f"/ws/operations/{operation.pk}/"
    events = client.get(f"/api/v1/operations/{operation.pk}/events/", {"after": 3}).json()["results"]
    assert [e["seq"] for e in events] == [4, 5, 6]
    assert events[-1]["message"] == "Succeeded"
    response = client.get(f"/api/v1/operations/{operation.pk}/events/", {"after": "abc"})
    assert response.status_code == 400
    assert response.json()["errors"]["after"] == ["must be a non-negative integer, got 'abc'"]


def test_cancel_a_finished_operation_is_a_conflict(operator):
    operation = finished_operation(operator)
    response = api_as(operator).post(f"/api/v1/operations/{operation.pk}/cancel/")
    assert response.status_code == 409
    assert response.json()["detail"] == "operation is already succeeded"


def test_cancel_a_pending_operation_is_accepted_and_recorded(member, cluster_clients):
    operation = Operation.objects.create(kind="test.kind", created_by=member, task_name="operations.task_follow")
    response = api_as(member).post(f"/api/v1/operations/{operation.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    operation.refresh_from_db()
    assert operation.status == OperationStatus.CANCELLED and operation.cancel_requested_by == member
    assert operation.events.last().message == "Cancelled by member"
    from apps.core.models import AuditEntry

    assert AuditEntry.objects.filter(action="operation.cancel", target_id=str(operation.pk), result="success").exists()


def test_list_query_count_does_not_grow_with_rows(operator, member):
    client = api_as(operator)
    for user in (operator, member):
        finished_operation(user, n_events=2)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/operations/").status_code == 200
    for _ in range(6):
        finished_operation(member, n_events=2)
    with CaptureQueriesContext(connection) as many:
        rows = client.get("/api/v1/operations/").json()["results"]
    assert len(rows) == 8
    assert len(many) == len(few)


@pytest.mark.django_db(transaction=True)
def test_websocket_replays_after_seq_then_closes_on_final_state(operator):
    operation = finished_operation(operator, n_events=6)
    accepted, code, frames = ws_session(f"/ws/operations/{operation.pk}/?after=2", user=operator)
    assert accepted
    events = json_frames(frames)
    assert [e["seq"] for e in events] == [3, 4, 5, 6]
    assert [e["message"] for e in events] == ["line 3", "line 4", "line 5", "Succeeded"]
    assert events[-1]["operation"]["status"] == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_websocket_refuses_users_who_may_not_see_the_operation(operator, member):
    operation = finished_operation(operator)
    accepted, code, _ = ws_session(f"/ws/operations/{operation.pk}/", user=member)
    assert not accepted
    accepted, code, _ = ws_session(f"/ws/operations/{operation.pk}/")  # anonymous
    assert not accepted
    accepted, _, frames = ws_session(f"/ws/operations/{operation.pk}/", user=operator)
    assert accepted and len(frames) == operation.last_seq


@pytest.mark.django_db(transaction=True)
def test_websocket_html_format_sends_the_panel_body_for_htmx(operator):
    operation = finished_operation(operator, n_events=3)
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from datacenter.asgi import application

    from .conftest import token_for

    headers = [(b"authorization", f"Token {token_for(operator)}".encode())]

    async def first_frame():
        communicator = WebsocketCommunicator(application, f"/ws/operations/{operation.pk}/?format=html",
                                             headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        text = await communicator.receive_from(timeout=10)
        await communicator.disconnect()
        return text

    html = async_to_sync(first_frame)()
    assert f'id="operation-{operation.pk}-body"' in html and 'hx-swap-oob="true"' in html
    assert f'id="operation-{operation.pk}-event-3"' in html
    assert "Succeeded" in html


@pytest.mark.django_db(transaction=True)
def test_generic_live_socket_applies_the_same_rule_to_operation_groups(operator, member):
    operation = finished_operation(operator)
    group = f"operation-{operation.pk}"
    _, _, frames = ws_session(f"/ws/live/?groups={group}&format=json", user=member, max_messages=1)
    assert json_frames(frames)[0] == {"type": "subscribed", "groups": [], "denied": [group]}
    _, _, frames = ws_session(f"/ws/live/?groups={group}&format=json", user=operator, max_messages=1)
    assert json_frames(frames)[0]["groups"] == [group]
