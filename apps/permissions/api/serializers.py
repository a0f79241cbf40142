"""API shapes of tokens, tenants, quotas and members."""

from django.utils import timezone
from rest_framework import serializers

from ..auth import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS
from ..choices import TenantRole
from ..models import ApiToken, Membership, Tenant, TenantPool


class ApiTokenSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="token_key", read_only=True,
                               help_text="The token's first characters: its id here, never the secret.")
    user = serializers.CharField(source="user.username", read_only=True)
    tenant_name = serializers.CharField(source="tenant.name", read_only=True, allow_null=True, default=None)
    expired = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "tenant", "tenant_name", "read_only", "created", "expiry", "expired",
                  "last_used", "last_used_from"]
        read_only_fields = fields

    def get_expired(self, token) -> bool:
        return token.expiry is not None and token.expiry <= timezone.now()


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="What uses the token (a script, a CI job).")
    expiry_days = serializers.IntegerField(min_value=1, max_value=MAX_EXPIRY_DAYS, default=DEFAULT_EXPIRY_DAYS,
                                           help_text="Days until the token stops working.")
    tenant = serializers.PrimaryKeyRelatedField(
        queryset=Tenant.objects.all(), required=False, allow_null=True,
        help_text="Tenant the token acts in; one you belong to (default: your active tenant; operators may omit it).")
    read_only = serializers.BooleanField(default=False, help_text="The token may only read.")


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret: `Authorization: Token <it>`. Shown only "
                                                            "in this answer, never again.")

    class Meta(ApiTokenSerializer.Meta):
        fields = ["token", *ApiTokenSerializer.Meta.fields]
        read_only_fields = fields


class TenantPoolSerializer(serializers.ModelSerializer):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)

    class Meta:
        model = TenantPool
        fields = ["cluster", "cluster_name", "pool"]
        read_only_fields = fields


class TenantSerializer(serializers.ModelSerializer):
    pools = TenantPoolSerializer(many=True, read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "slug", "description", "lease_days", "lease_max_extension_days", "lease_grace_days",
                  "approval_above_vcpus", "approval_above_memory", "approval_above_disk", "pools",
                  "created", "updated"]
        read_only_fields = ["id", "pools", "created", "updated"]
        extra_kwargs = {
            "lease_days": {"min_value": 1, "max_value": 3650},
            "lease_max_extension_days": {"min_value": 1, "max_value": 3650},
            "lease_grace_days": {"min_value": 0, "max_value": 3650},
            "approval_above_vcpus": {"min_value": 1, "max_value": 100000},
            "approval_above_memory": {"min_value": 1, "max_value": 2**60},
            "approval_above_disk": {"min_value": 1, "max_value": 2**60},
            "description": {"max_length": 2000},
        }


class QuotaUsageSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text='"vcpus", "memory" (bytes), "disk" (bytes), "guests", '
                                               '"snapshots_per_guest", "backups" or "gpu:<profile id>".')
    label = serializers.CharField()
    limit = serializers.IntegerField(allow_null=True, help_text="None: unlimited.")
    used = serializers.IntegerField(help_text="What exists now.")
    reserved = serializers.IntegerField(help_text="What operations in flight hold.")


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="user_id", read_only=True, help_text="The user's id.")
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=TenantRole.choices)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created"]
        read_only_fields = ["id", "username", "created"]


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="An existing user's username.")
    role = serializers.ChoiceField(choices=TenantRole.choices, default=TenantRole.MEMBER)
