"""Pages: the approvals queue (operators decide; a tenant's users follow their requests), one
request, and the decision posts. Scoped by the policy: 404 outside it, 403 seen but not allowed."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View

from apps.permissions import quotas
from apps.permissions.policy import actor_for_request, can

from . import services
from .choices import ApprovalStatus
from .selectors import approval_get, approval_list


def _amounts_text(approval) -> list[str]:
    return [f"{quotas.label(r)} {quotas.amount_text(r, a)}" for r, a in sorted((approval.amounts or {}).items())]


def _decorate(request, approvals):
    actor = actor_for_request(request)
    for approval in approvals:
        approval.amounts_text = _amounts_text(approval)
        approval.may_decide = approval.is_waiting and can(actor, "approval.decide", approval)
        approval.may_withdraw = approval.is_waiting and not approval.may_decide and \
            can(actor, "approval.withdraw", approval)
    return approvals


class ApprovalListView(View):
    def get(self, request):
        status = request.GET.get("status", "")
        approvals = list(approval_list(user=request, status=status if status in ApprovalStatus.values else None)[:200])
        return render(request, "approvals/approval_list.html", {
            "title": "Approvals", "approvals": _decorate(request, approvals), "status": status,
            "statuses": ApprovalStatus.choices})


class ApprovalDetailView(View):
    def get(self, request, pk):
        approval = approval_get(user=request, pk=pk)
        if approval is None:
            raise Http404("No such approval request.")
        return render(request, "approvals/approval.html", {"title": approval.title,
                                                           "approval": _decorate(request, [approval])[0]})


class _DecisionView(View):
    decide = None  # services.approval_<verb>

    def post(self, request, pk):
        approval = approval_get(user=request, pk=pk)
        if approval is None:
            raise Http404("No such approval request.")
        try:
            result = type(self).decide(approval=approval, user=request.user, reason=request.POST.get("reason", ""),
                                       request=request)
        except ValidationError as exc:
            messages.error(request, "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()))
            return redirect("approvals:approval", pk=pk)
        if isinstance(result, services.ApprovalRequest):
            messages.success(request, f"“{approval.title}”: {result.get_status_display().lower()}.")
            return redirect("approvals:approval", pk=pk)
        messages.success(request, f"Approved: “{approval.title}” is running.")
        return redirect(result.get_absolute_url())


class ApprovalApproveView(_DecisionView):
    decide = staticmethod(services.approval_approve)


class ApprovalDeclineView(_DecisionView):
    decide = staticmethod(services.approval_decline)


class ApprovalWithdrawView(_DecisionView):
    decide = staticmethod(services.approval_withdraw)
