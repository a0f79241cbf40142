from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "apps.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self):
        from apps.core import live
        from apps.core.metrics import REGISTRY

        from .metrics import OperationCollector
        from .selectors import operation_get

        # /ws/live/?groups=operation-<uuid> uses the same visibility rule as the pages and API.
        live.register_group("operation", lambda user, key: operation_get(user=user, pk=key) is not None)
        REGISTRY.register(OperationCollector())
        from django.db.models import Q

        from apps.permissions import policy

        from .models import Operation

        # The tenant's operations, and always the ones the user started.
        policy.register_scope(Operation, lambda actor: policy.tenant_q(actor) | Q(created_by_id=actor.user.pk))
