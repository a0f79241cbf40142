import pytest
from django.test import RequestFactory

from apps.core.models import AuditEntry
from apps.core.selectors import audit_entry_list
from apps.core.services import audit_log

pytestmark = pytest.mark.django_db


def test_audit_log_records_who_what_target_result_and_where(operator):
    request = RequestFactory().post("/x", REMOTE_ADDR="10.1.2.3")
    entry = audit_log(user=operator, action="core.user_update", target=operator, result="success",
                      request=request, detail={"field": "email"})
    entry.refresh_from_db()
    assert entry.username == "operator"
    assert entry.user == operator
    assert entry.action == "core.user_update"
    assert (entry.target_type, entry.target_id, entry.target_repr) == ("auth.user", str(operator.pk), "operator")
    assert entry.result == "success"
    assert entry.remote_addr == "10.1.2.3"
    assert entry.detail == {"field": "email"}


def test_secrets_never_reach_the_audit_log(operator):
    entry = audit_log(user=operator, action="nodes.cluster_create", target="cluster lab", result="success",
                      detail={"name": "lab", "token_secret": "s3cr3t", "nested": {"Password": "p", "ok": 1},
                              "items": [{"api_key": "k"}]})
    entry.refresh_from_db()
    assert entry.detail == {"name": "lab", "token_secret": "***", "nested": {"Password": "***", "ok": 1},
                            "items": [{"api_key": "***"}]}
    assert "s3cr3t" not in str(AuditEntry.objects.values_list("detail", flat=True)[0])


def test_bad_result_is_refused_naming_the_field(operator):
    with pytest.raises(ValueError, match="result: must be one of"):
        audit_log(user=operator, action="x.y", target=None, result="ok")
    assert AuditEntry.objects.count() == 0


def test_username_survives_user_deletion(user):
    audit_log(user=user, action="guests.guest_start", target="vm 100", result="denied")
    user.delete()
    entry = AuditEntry.objects.get()
    assert entry.user is None
    assert entry.username == "member"


def test_selector_scopes_entries(operator, user):
    audit_log(user=operator, action="a.b", target=None, result="success")
    audit_log(user=user, action="c.d", target=None, result="failure")
    assert audit_entry_list(user=operator).count() == 2
    assert list(audit_entry_list(user=user).values_list("action", flat=True)) == ["c.d"]
    from django.contrib.auth.models import AnonymousUser

    assert audit_entry_list(user=AnonymousUser()).count() == 0
