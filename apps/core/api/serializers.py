from rest_framework import serializers

from ..models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "created", "username", "token", "tenant_id", "action", "target_type", "target_id", "target_repr",
                  "result", "remote_addr", "detail"]
        read_only_fields = fields
