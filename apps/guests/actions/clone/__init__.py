"""Clone any guest (full, or linked from a template), convert a guest to a template, delete a guest.

Clone: the new vmid is reserved (VmidReservation, via create.reserve_vmid) in the same transaction as
the operation, before Proxmox is called; the worker follows the qmclone/vzclone task (percent + ETA
from its log), then re-syncs the new guest so it shows at once, and releases the reservation.
Delete: refused up front while protection is on, while running, or while HA-managed without purge
(from the last read; Proxmox checks again and its refusal is shown in words + its message).

Modules: validation (plan_clone), services (guest_clone / guest_template / guest_delete), worker
(Celery tasks `guests.guest_clone`, `guests.guest_template`, `guests.guest_delete`), views
(`urlpatterns`), api (`api_urlpatterns`, and delete_guest shared with GuestViewSet's delete).
"""

from .api import (
    CloneSerializer,
    DeleteSerializer,
    GuestCloneAPIView,
    GuestDeleteAPIView,
    GuestTemplateAPIView,
    api_urlpatterns,
    delete_guest,
)
from .services import guest_clone, guest_delete, guest_template
from .validation import plan_clone
from .views import (
    CloneForm,
    DeleteForm,
    GuestClonePageView,
    GuestCloneView,
    GuestDeleteView,
    GuestTemplateView,
    urlpatterns,
)
from .worker import guest_clone_task, guest_delete_task, guest_template_task, run_clone, run_delete, run_template

__all__ = [
    "CloneForm", "CloneSerializer", "DeleteForm", "DeleteSerializer", "GuestCloneAPIView", "GuestClonePageView",
    "GuestCloneView", "GuestDeleteAPIView", "GuestDeleteView", "GuestTemplateAPIView", "GuestTemplateView",
    "api_urlpatterns", "delete_guest", "guest_clone", "guest_clone_task", "guest_delete", "guest_delete_task",
    "guest_template", "guest_template_task", "plan_clone", "run_clone", "run_delete", "run_template", "urlpatterns",
]
