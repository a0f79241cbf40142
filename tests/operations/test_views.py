"""Operation pages: list, detail with the live progress panel, htmx partial, cancel action."""

import pytest

from apps.operations.choices import OperationStatus
from apps.operations.models import Operation
from apps.operations.services import OperationReporter

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(operator):
    operation = Operation.objects.create(kind="task.follow", title="Start VM 104", created_by=operator,
                                         status=OperationStatus.RUNNING)
    OperationReporter(operation).event("INFO:  45% (1.8 GiB of 4.0 GiB) in 10s", progress=45, eta=12)
    operation.refresh_from_db()
    return operation


def test_list_page_shows_operations_of_the_user(client, operator, member, running):
    client.force_login(operator)
    page = client.get("/operations/")
    assert page.status_code == 200 and "Start VM 104" in page.content.decode()
    client.force_login(member)
    assert "Start VM 104" not in client.get("/operations/").content.decode()


def test_detail_page_renders_the_live_panel(client, operator, running):
    client.force_login(operator)
    html = client.get(f"/operations/{running.pk}/").content.decode()
    assert f'ws-connect="/ws/operations/{running.pk}/?format=html"' in html
    assert 'value="45"' in html and "about 12 s left" in html
    assert "INFO:  45% (1.8 GiB of 4.0 GiB) in 10s" in html


def test_detail_htmx_request_returns_only_the_partial(client, operator, running):
    client.force_login(operator)
    response = client.get(f"/operations/{running.pk}/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith("<section") or "<html" not in html
    assert f'id="operation-{running.pk}"' in html
    assert "HX-Request" in response["Vary"]


def test_detail_of_someone_elses_operation_is_404(client, member, running):
    client.force_login(member)
    assert client.get(f"/operations/{running.pk}/").status_code == 404
    assert client.post(f"/operations/{running.pk}/cancel/").status_code == 404


def test_cancel_button_posts_and_returns_the_final_panel(client, operator, cluster_clients):
    operation = Operation.objects.create(kind="task.follow", created_by=operator)
    client.force_login(operator)
    response = client.post(f"/operations/{operation.pk}/cancel/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cancelled by operator" in html and "ws-connect" not in html
    operation.refresh_from_db()
    assert operation.status == OperationStatus.CANCELLED


def test_login_required(anon_client, running):
    response = anon_client.get("/operations/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_metrics_count_operations_by_status(anon_client, running, settings):
    settings.METRICS_PUBLIC = True
    body = anon_client.get("/metrics").content.decode()
    assert 'datacenter_operations{status="running"} 1.0' in body
    assert 'datacenter_operations{status="failed"} 0.0' in body
