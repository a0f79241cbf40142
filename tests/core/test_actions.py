"""The generic action view and the API action decorator: the flow every action view runs on
(validate -> service -> audit -> answer), checked without Proxmox on purpose-built views."""

import pytest
from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework import serializers
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from apps.core.actions import ActionView
from apps.core.api import ActionAPIMixin, operation_handler
from apps.core.models import AuditEntry, AuditResult

pytestmark = pytest.mark.django_db


class Refused(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message, self.proxmox_message, self.status = message, "VM is locked (backup)", 409


class AlreadyAudited(PermissionDenied):
    audited = True  # like the policy's Denied, which writes its own entry


def service(name: str) -> dict:
    if name == "deny":
        raise PermissionDenied("only operators may")
    if name == "pdeny":
        raise AlreadyAudited("not in your tenant")
    if name == "no":
        raise Refused("Could not do it: it is locked")
    if name == "taken":
        raise ValidationError({"name": ["that name is taken"]})
    return {"queued": name}


class NameForm(forms.Form):
    name = forms.CharField(max_length=5)


class ThingActionView(ActionView):
    form_class = NameForm
    audit_action, audit_fields = "tests.thing", ("name",)
    refusals = (Refused,)

    def perform(self, form):
        return service(form.cleaned_data["name"])

    def form_valid(self, form, result):
        return HttpResponse(f"queued {result['queued']}")


def post(user, data):
    request = RequestFactory().post("/thing/", data)
    request.user = user
    return ThingActionView.as_view()(request)


def test_view_runs_the_service_and_audits_it_as_accepted(operator):
    response = post(operator, {"name": "web"})
    assert response.content == b"queued web"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.result, entry.detail) == ("tests.thing", AuditResult.ACCEPTED, {"name": "web"})


@pytest.mark.parametrize("name, text, result", [
    ("deny", "only operators may", AuditResult.DENIED),
    ("pdeny", "not in your tenant", None),
    ("no", "Could not do it: it is locked", AuditResult.FAILURE),
    ("taken", "name: that name is taken", None),
    ("toolong", "name: Ensure this value has at most 5 characters (it has 7).", None),
])
def test_view_answers_every_refusal_in_words_and_audits_what_reached_the_service(operator, name, text, result):
    response = post(operator, {"name": name})
    assert response.status_code == 200  # the form's place shows the reason (htmx swaps only 2xx)
    assert text in response.content.decode()
    assert "HX-Request" in response["Vary"]
    assert list(AuditEntry.objects.values_list("result", flat=True)) == ([result] if result else [])


class NameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=5)


class ThingAPIView(ActionAPIMixin, APIView):
    action_refusals = (Refused,)

    @operation_handler(serializer=NameSerializer, audit="tests.thing", audit_fields=("name",))
    def post(self, obj, data):
        return service(data["name"])


def api_post(user, data):
    request = APIRequestFactory().post("/api/thing/", data, format="json")
    force_authenticate(request, user=user)
    return ThingAPIView.as_view()(request)


def test_api_answers_202_and_audits_as_accepted(operator):
    response = api_post(operator, {"name": "web"})
    assert (response.status_code, response.data) == (202, {"queued": "web"})
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.result, entry.detail) == ("tests.thing", AuditResult.ACCEPTED, {"name": "web"})


@pytest.mark.parametrize("name, status, body, result", [
    ("deny", 403, {"detail": "only operators may"}, AuditResult.DENIED),
    ("pdeny", 403, {"detail": "not in your tenant"}, None),
    ("no", 409, {"detail": "Could not do it: it is locked", "proxmox_message": "VM is locked (backup)"},
     AuditResult.FAILURE),
    ("taken", 400, {"detail": "Invalid input.", "errors": {"name": ["that name is taken"]}}, None),
    ("toolong", 400, {"detail": "Invalid input.",
                      "errors": {"name": ["Ensure this field has no more than 5 characters."]}}, None),
])
def test_api_errors_are_field_maps_or_reasons_and_attempts_are_audited(operator, name, status, body, result):
    response = api_post(operator, {"name": name})
    response.render()
    assert response.status_code == status
    assert response.data == body
    assert list(AuditEntry.objects.values_list("result", flat=True)) == ([result] if result else [])
