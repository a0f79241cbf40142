"""A refused request is one log line and one audit entry, never a traceback; the Admin link is
shown only to those Django admin lets change something."""

import logging

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.core.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_a_refused_page_logs_one_line_and_is_audited(user_client, user, caplog):
    caplog.set_level(logging.INFO)
    response = user_client.get("/clusters/add/")  # operators only
    assert response.status_code == 403
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].getMessage().startswith(f"refused GET /clusters/add/ for {user.username} (403)")
    assert lines[0].exc_info is None and "Traceback" not in caplog.text
    # Audited once: by the view when it records its own refusal, else by RefusedAccessMiddleware.
    assert AuditEntry.objects.filter(result="denied", user=user).count() == 1


def test_a_refused_api_call_logs_one_line_and_is_audited(api_for, user, caplog):
    caplog.set_level(logging.INFO)
    api_for(user).post("/api/v1/clusters/", {"api_url": "https://pve.example:8006"}, expect=403)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].getMessage().startswith("refused POST /api/v1/clusters/ for")
    assert "Traceback" not in caplog.text
    assert AuditEntry.objects.filter(result="denied", user=user).count() == 1


def _nav(client) -> str:
    return client.get("/").content.decode()


def test_admin_link_only_for_those_who_can_use_admin(client, operator, user_client, django_user_model):
    admin_link = 'href="/admin/"'
    assert admin_link not in _nav(client)  # an operator (staff without admin permissions)
    assert admin_link not in _nav(user_client)
    operator.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    assert admin_link in _nav(client)
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass-1234")
    superuser = Client()
    superuser.force_login(root)
    assert admin_link in _nav(superuser)


def test_audit_log_reads_for_a_person(client, operator):
    from apps.core.services import audit_log
    from apps.operations.models import Operation

    operation = Operation.objects.create(kind="guest.power", title="Start VM 100", status="succeeded")
    entry = audit_log(user=operator, action="guests.guest_start", target="VM 100 (web-01)", result="accepted",
                      detail={"operation": str(operation.pk)})
    listing = client.get("/audit/").content.decode()
    assert ">Target</a>" in listing and "Target repr</a>" not in listing  # the column header
    assert "Guest start" in listing and operation.get_absolute_url() in listing
    page = client.get(f"/audit/{entry.pk}/").content.decode()
    assert "<title>Audit entry: Guest start · Datacenter</title>" in page  # never "Datacenter · Datacenter"
    assert "<dt>Target</dt><dd>VM 100 (web-01)</dd>" in page
    assert operation.get_absolute_url() in page and "Succeeded" in page
