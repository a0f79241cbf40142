from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from apps.permissions import policy

        from .models import ApprovalRequest

        # A tenant's users see their tenant's requests (operators and auditors see all).
        policy.register_scope(ApprovalRequest, lambda actor: policy.tenant_q(actor))
