from rest_framework import serializers

from ..models import ApprovalRequest


class ApprovalRequestSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="approvals-api:approval-detail")

    class Meta:
        model = ApprovalRequest
        fields = ["id", "url", "tenant", "kind", "title", "status", "amounts", "above", "created_by", "created",
                  "decided_by", "decided_at", "reason", "operation_id"]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                   help_text="Why (required to decline; the requester reads it)")
