"""The operation page in chromium: the progress panel updates live over the htmx websocket."""

import pytest

from apps.operations.services import operation_follow_task

from .test_flow import full_log, slow_time, start_vm

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_operation_page_streams_the_task_until_it_succeeds(operator_page, live_server, celery_worker, pve, pvesim,
                                                           cluster_clients, operator):
    page = operator_page
    with slow_time(pvesim, scale=1.0):
        upid = start_vm(pve)
        operation = operation_follow_task(user=operator, cluster_id=None, upid=upid)
        page.goto(f"{live_server.url}/operations/{operation.pk}/")
        page.wait_for_selector(f"#operation-{operation.pk}-status[data-status=succeeded]", timeout=60_000)
    events = page.inner_text(f"#operation-{operation.pk}-events")
    for line in full_log(pve, upid):
        assert line in events
    assert page.locator(f"#operation-{operation.pk}-events li").count() == operation.events.count()
    assert page.locator("[ws-connect]").count() == 0  # the final panel dropped the socket
