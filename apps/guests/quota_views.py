"""The create wizard's quota bars (htmx): a tenant user's usage and what the wizard's current
values would take and leave, resource by resource (as Horizon's launch dialog shows)."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponse
from django.shortcuts import render
from django.views import View

from apps.permissions.models import Tenant
from apps.permissions.policy import as_actor
from apps.permissions.quotas import quota_preview

from .quotas import create_amounts


def wizard_tenant(request) -> Tenant | None:
    """The tenant a wizard's new guest is charged to: the acting tenant user's (operators: none)."""
    actor = as_actor(request)
    if actor.is_operator or actor.tenant_id is None:
        return None
    return Tenant.objects.filter(pk=actor.tenant_id).first()


class CreateQuotaBarsView(LoginRequiredMixin, View):
    """GET ?cores=&memory=(MiB)&disk_size=(GiB): the bars partial; empty for operators."""

    def get(self, request):
        tenant = wizard_tenant(request)
        if tenant is None:
            return HttpResponse("")
        q = request.GET
        amounts = create_amounts(cores=q.get("cores"), memory_mib=q.get("memory"), disk_gib=q.get("disk_size"))
        return render(request, "permissions/partials/quota_bars.html", {
            "tenant": tenant, "rows": quota_preview(tenant=tenant, amounts=amounts), "preview": True})
