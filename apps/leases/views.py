"""Pages: the leases of the guests one sees (ending first), extend (owners), set (operators)."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import View

from apps.guests.actions.common import guest_or_404
from apps.permissions.policy import actor_for_request, can

from . import services
from .selectors import lease_get, lease_list


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())


class LeaseListView(View):
    def get(self, request):
        actor = actor_for_request(request)
        now = timezone.now()
        infos = [services.describe(lease, now) for lease in lease_list(user=request).order_by("expires_at")[:500]]
        for info in infos:
            info["may_extend"] = info["state"] != "deleting" and can(actor, "guest.lease_extend", info["lease"].guest)
        return render(request, "leases/lease_list.html", {"title": "Leases", "infos": infos,
                                                          "warning_days": services.warning_days()})


class LeaseExtendView(View):
    def post(self, request, pk):
        lease = lease_get(user=request, pk=pk)
        if lease is None:
            raise Http404("No such lease.")
        try:
            lease = services.lease_extend(lease=lease, user=request.user, days=request.POST.get("days"), request=request)
            messages.success(request, f"The lease of {lease.guest} now ends on {lease.expires_at:%Y-%m-%d %H:%M}.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        if request.POST.get("next") == "list":
            return redirect("leases:lease_list")
        return redirect(lease.guest.get_absolute_url())


class GuestLeaseSetView(View):
    def post(self, request, pk):
        guest = guest_or_404(request, pk)
        raw = (request.POST.get("expires_at") or "").strip()
        try:
            expires_at = None
            if raw:
                try:
                    expires_at = timezone.make_aware(datetime.fromisoformat(raw))
                except ValueError:
                    raise ValidationError({"expires_at": ["a date and time, e.g. 2027-01-31T18:00"]}) from None
            services.lease_set(guest=guest, user=request.user, expires_at=expires_at, request=request)
            messages.success(request, f"Lease of {guest} {'set' if expires_at else 'removed'}.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect(guest.get_absolute_url())
