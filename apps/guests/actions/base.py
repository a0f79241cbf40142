"""The guest's flavour of the generic action views (apps.core.actions, apps.core.api.actions): the
guest comes from the URL's pk through the scoped selector (404 outside the user's scope), and a
synchronous Proxmox refusal (ActionRefused) is answered with its reason and audited as a failure."""

from __future__ import annotations

from rest_framework.views import APIView

from apps.core.actions import ActionView
from apps.core.api import ActionAPIMixin

from .common import ActionRefused, guest_or_404


class GuestActionView(ActionView):
    context_object_name = "guest"
    error_template_name = "guests/partials/guest_action_error.html"
    refusals = (ActionRefused,)

    def get_object(self):
        return guest_or_404(self.request, self.kwargs["pk"])

    def get_form_kwargs(self) -> dict:
        return {"guest": self.object}


class GuestActionAPIView(ActionAPIMixin, APIView):
    action_refusals = (ActionRefused,)

    def get_action_object(self):
        return guest_or_404(self.request, self.kwargs["pk"])
