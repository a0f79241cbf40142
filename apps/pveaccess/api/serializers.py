"""Shapes of /api/v1/pve-access/: what Proxmox holds (read from the gateway's dataclasses) and
what a change asks for."""

from __future__ import annotations

from rest_framework import serializers


class RealmSerializer(serializers.Serializer):
    realm = serializers.CharField()
    type = serializers.CharField()
    comment = serializers.CharField()
    tfa = serializers.CharField(help_text="Two-factor provider of the realm, empty for none.")


class ProxmoxTokenSerializer(serializers.Serializer):
    authid = serializers.CharField(help_text="Full token id: user@realm!name.")
    userid = serializers.CharField()
    name = serializers.CharField()
    privsep = serializers.BooleanField(help_text="Privilege-separated: only what both its own ACL entries and "
                                                 "its user grant.")
    expire = serializers.IntegerField(allow_null=True, help_text="Seconds since the epoch; 0 never; null: its user's.")
    comment = serializers.CharField()


class ProxmoxTokenCreatedSerializer(ProxmoxTokenSerializer):
    value = serializers.CharField(help_text="The secret, shown by Proxmox this once; the portal keeps none.")


class UserSerializer(serializers.Serializer):
    userid = serializers.CharField()
    realm = serializers.CharField()
    enable = serializers.BooleanField()
    expire = serializers.IntegerField(help_text="Seconds since the epoch, 0 for never.")
    firstname = serializers.CharField()
    lastname = serializers.CharField()
    email = serializers.CharField()
    comment = serializers.CharField()
    groups = serializers.ListField(child=serializers.CharField())
    tokens = ProxmoxTokenSerializer(many=True)


class GroupSerializer(serializers.Serializer):
    groupid = serializers.CharField()
    comment = serializers.CharField()
    members = serializers.ListField(child=serializers.CharField())


class RoleSerializer(serializers.Serializer):
    roleid = serializers.CharField()
    privs = serializers.ListField(child=serializers.CharField(), source="sorted_privs")
    special = serializers.BooleanField(help_text="Built into Proxmox: cannot be changed or deleted.")


SUBJECT_HELP = "user, group or token"  # a plain string: an enum named `type` would collide in the schema


class AclEntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    type = serializers.CharField(help_text=SUBJECT_HELP)
    ugid = serializers.CharField(help_text="User id, group id or full token id.")
    roleid = serializers.CharField()
    propagate = serializers.BooleanField()


class PoolSerializer(serializers.Serializer):
    poolid = serializers.CharField()
    comment = serializers.CharField()
    vms = serializers.ListField(child=serializers.IntegerField())
    storage = serializers.ListField(child=serializers.CharField())


class GrantSerializer(serializers.Serializer):
    role = serializers.CharField()
    path = serializers.CharField(help_text="Where the ACL entry sits.")
    type = serializers.CharField()
    ugid = serializers.CharField()
    propagate = serializers.BooleanField()
    pool = serializers.CharField(help_text="The pool through which the role reaches the path, if any.")


class EffectiveSerializer(serializers.Serializer):
    authid = serializers.CharField(source="effective.authid")
    path = serializers.CharField(source="effective.path")
    privileges = serializers.DictField(child=serializers.BooleanField(), source="effective.privileges",
                                       help_text="Privilege -> whether it also holds below the path.")
    roles = serializers.DictField(child=serializers.BooleanField(), source="effective.roles")
    grants = GrantSerializer(many=True, source="effective.grants", help_text="The ACL entries that decide.")
    reason = serializers.CharField(source="effective.reason")
    proxmox = serializers.DictField(child=serializers.BooleanField(), help_text="Proxmox's own answer.")
    agrees = serializers.BooleanField(help_text="The computation and Proxmox's answer are the same.")


class EffectiveQuerySerializer(serializers.Serializer):
    authid = serializers.CharField(max_length=128, help_text="User id (name@realm) or token id (name@realm!token).")
    path = serializers.CharField(max_length=256, default="/", help_text="ACL path, e.g. /vms/100.")


class UserCreateSerializer(serializers.Serializer):
    userid = serializers.CharField(max_length=64, help_text="name@realm")
    password = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=64,
                                     help_text="pve realm only, 8 to 64 characters; never stored by the portal.")
    groups = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                   max_length=256)
    firstname = serializers.CharField(required=False, allow_blank=True, default="", max_length=1024)
    lastname = serializers.CharField(required=False, allow_blank=True, default="", max_length=1024)
    email = serializers.EmailField(required=False, allow_blank=True, default="", max_length=254)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2048)
    enable = serializers.BooleanField(required=False, default=True)
    expire = serializers.DateField(required=False, allow_null=True, default=None, help_text="Empty: never.")


class UserUpdateSerializer(serializers.Serializer):
    groups = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=256,
                                   help_text="Replaces the user's groups ([] leaves none).")
    enable = serializers.BooleanField(required=False)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2048)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)


class GroupCreateSerializer(serializers.Serializer):
    groupid = serializers.CharField(max_length=64)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2048)


class RoleCreateSerializer(serializers.Serializer):
    roleid = serializers.CharField(max_length=64)
    privs = serializers.ListField(child=serializers.CharField(max_length=64), max_length=256,
                                  help_text="From /privileges/.")


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, help_text="The part after '!'.")
    privsep = serializers.BooleanField(required=False, default=True)
    expire = serializers.DateField(required=False, allow_null=True, default=None, help_text="Empty: its user's.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2048)


class AclChangeSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=256)
    type = serializers.CharField(max_length=8, help_text=SUBJECT_HELP)
    ugid = serializers.CharField(max_length=128, help_text="User id, group id or full token id.")
    roleid = serializers.CharField(max_length=64)


class AclAddSerializer(AclChangeSerializer):
    propagate = serializers.BooleanField(required=False, default=True)
