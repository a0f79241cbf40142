from django.apps import AppConfig


class LeasesConfig(AppConfig):
    name = "apps.leases"
    label = "leases"
    verbose_name = "Leases"

    def ready(self):
        from apps.permissions import policy

        from . import services  # noqa: F401  (connects operation_finished: new guests get their tenant's lease)
        from .models import Lease

        # A tenant's users see the leases of their tenant's guests.
        policy.register_scope(Lease, lambda actor: policy.tenant_q(actor, "guest__tenant"))
