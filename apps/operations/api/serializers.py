from rest_framework import serializers

from ..models import Operation, OperationEvent


class OperationSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="operations-api:operation-detail")
    events_url = serializers.HyperlinkedIdentityField(view_name="operations-api:operation-events")
    websocket = serializers.SerializerMethodField(help_text="Path of the live event stream (JSON).")

    class Meta:
        model = Operation
        fields = ["id", "url", "kind", "title", "target_type", "target_id", "target_repr", "cluster_id",
                  "status", "progress", "eta", "upids", "error", "result", "created_by", "created",
                  "started", "finished", "last_seq", "events_url", "websocket"]
        read_only_fields = fields

    def get_websocket(self, obj) -> str:
        return f"/ws/operations/{obj.pk}/"


class OperationEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OperationEvent
        fields = ["seq", "level", "message", "progress", "created"]
        read_only_fields = fields
