"""`{% lease_panel guest %}` on the guest page and `{% lease_warnings %}` on the dashboard: the
portal's warning before a lease ends, and the forms to extend (owners) or set it (operators)."""

from django import template
from django.utils import timezone

from apps.permissions.policy import can

from .. import services
from ..models import Lease

register = template.Library()


def _actor(context):
    request = context.get("request")
    return getattr(request, "actor", None) or request


@register.inclusion_tag("leases/partials/guest_lease.html", takes_context=True)
def lease_panel(context, guest):
    actor = _actor(context)
    lease = Lease.objects.select_related("guest__tenant").filter(guest=guest).first()
    return {"guest": guest, "info": services.describe(lease), "request": context.get("request"),
            "csrf_token": context.get("csrf_token"),
            "may_extend": lease is not None and can(actor, "guest.lease_extend", guest),
            "may_set": can(actor, "lease.set", guest), "today": timezone.now()}


@register.inclusion_tag("leases/partials/warnings.html", takes_context=True)
def lease_warnings(context):
    request = context.get("request")
    leases = list(services.expiring_for(user=request).order_by("expires_at")[:20]) if request else []
    return {"infos": [services.describe(lease) for lease in leases]}
