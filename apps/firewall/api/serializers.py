"""Request bodies of the firewall API. Shapes only: Proxmox's syntax is checked by
apps.firewall.validation in the service, which answers field errors the same way."""

from rest_framework import serializers


class RuleSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=8, help_text="in, out, group (forward: datacenter and nodes)")
    action = serializers.CharField(max_length=20, help_text="ACCEPT, DROP, REJECT, or the security group of a group rule")
    macro = serializers.CharField(max_length=128, required=False, allow_blank=True)
    proto = serializers.CharField(max_length=16, required=False, allow_blank=True)
    dport = serializers.CharField(max_length=256, required=False, allow_blank=True, help_text="22, 80:85, 22,443, ssh")
    sport = serializers.CharField(max_length=256, required=False, allow_blank=True)
    source = serializers.CharField(max_length=512, required=False, allow_blank=True,
                                   help_text="IP, CIDR, a-b range, list, +ipset, +dc/name, +guest/name, or an alias")
    dest = serializers.CharField(max_length=512, required=False, allow_blank=True)
    iface = serializers.CharField(max_length=20, required=False, allow_blank=True, help_text="guests: net0, net1, ...")
    log = serializers.CharField(max_length=8, required=False, allow_blank=True)
    icmp_type = serializers.CharField(max_length=40, required=False, allow_blank=True, source="icmp-type")
    enable = serializers.BooleanField(required=False, default=True)
    comment = serializers.CharField(max_length=512, required=False, allow_blank=True)
    pos = serializers.IntegerField(required=False, min_value=0, help_text="where to insert (default: on top)")
    digest = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                   help_text="`digest` from the list: refused (409) if the rules changed since")


class MoveSerializer(serializers.Serializer):
    to = serializers.IntegerField(min_value=0, help_text="the position the rule ends up at (0 = top)")
    digest = serializers.CharField(max_length=64, required=False, allow_blank=True)


class EnableSerializer(serializers.Serializer):
    enable = serializers.BooleanField()
    digest = serializers.CharField(max_length=64, required=False, allow_blank=True)


class OptionsSerializer(serializers.Serializer):
    """Options of the level (see GET); an empty string resets one to Proxmox's default."""

    values = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=16))
    digest = serializers.CharField(max_length=64, required=False, allow_blank=True)


class NameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    comment = serializers.CharField(max_length=512, required=False, allow_blank=True)


class EntrySerializer(serializers.Serializer):
    cidr = serializers.CharField(max_length=64)
    nomatch = serializers.BooleanField(required=False, default=False)
    comment = serializers.CharField(max_length=512, required=False, allow_blank=True)


class AliasSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    cidr = serializers.CharField(max_length=64)
    comment = serializers.CharField(max_length=512, required=False, allow_blank=True)


class DefaultGroupsSerializer(serializers.Serializer):
    groups = serializers.ListField(child=serializers.CharField(max_length=18), max_length=32)
