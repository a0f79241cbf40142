"""The firewall's rules live in Proxmox; the portal keeps only what Proxmox has no place for."""

from django.db import models

from apps.core.models import EncryptedTextField


class DefaultGroup(models.Model):
    """A security group every new guest of `tenant` on `cluster` gets, as a group rule, when the
    portal creates it (the tenant's own group or a shared one)."""

    tenant = models.ForeignKey("permissions.Tenant", on_delete=models.CASCADE, related_name="firewall_defaults")
    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="firewall_defaults")
    group = models.CharField(max_length=18)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("tenant", "cluster", "group")
        constraints = (models.UniqueConstraint(fields=["tenant", "cluster", "group"], name="firewall_default_once"),)

    def __str__(self) -> str:
        return f"{self.group} for new guests of {self.tenant_id} on {self.cluster_id}"


# -- IPS (Suricata) over the nodes' SSH channel ----------------------------------------------------

class SshChannel(models.Model):
    """An operator's SSH access to one cluster's nodes, for what Proxmox has no API for (Suricata:
    a guest's `ips` options in its firewall file, and the nodes' alert logs). The key pair is the
    portal's own, made for this channel; the private half is encrypted at rest and never shown."""

    cluster = models.OneToOneField("nodes.Cluster", on_delete=models.CASCADE, related_name="ssh_channel")
    enabled = models.BooleanField(default=True)
    username = models.CharField(max_length=32, default="root")
    port = models.PositiveIntegerField(default=22, help_text="nodes without a port of their own")
    private_key = EncryptedTextField()
    public_key = models.TextField()
    key_fingerprint = models.CharField(max_length=64)
    trust_on_first_use = models.BooleanField(
        default=True, help_text="pin the host key a node presents the first time (otherwise: pin each one first)")
    created = models.DateTimeField(auto_now_add=True)
    key_created = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"SSH channel of {self.cluster}"


class NodeHost(models.Model):
    """How the channel reaches one node, its pinned host key, and where the node's EVE log was
    read up to (byte offset and a fingerprint of the file's first line)."""

    class Pinned(models.TextChoices):
        TOFU = "tofu", "first use"
        PASTED = "pasted", "pasted by an operator"
        SCANNED = "scanned", "read and confirmed by an operator"

    channel = models.ForeignKey(SshChannel, on_delete=models.CASCADE, related_name="hosts")
    node = models.CharField(max_length=100)
    address = models.CharField(max_length=255, blank=True, help_text="empty: the node's address in Proxmox")
    port = models.PositiveIntegerField(null=True, blank=True)
    host_key = models.TextField(blank=True)  # "ssh-ed25519 AAAA...", empty until pinned
    pinned_how = models.CharField(max_length=8, choices=Pinned.choices, blank=True)
    pinned_at = models.DateTimeField(null=True, blank=True)
    eve_offset = models.BigIntegerField(default=0)
    eve_head = models.CharField(max_length=64, blank=True)
    eve_read_at = models.DateTimeField(null=True, blank=True)
    eve_error = models.TextField(blank=True)

    class Meta:
        ordering = ("channel", "node")
        constraints = (models.UniqueConstraint(fields=["channel", "node"], name="firewall_nodehost_once"),)

    def __str__(self) -> str:
        return f"{self.node} of {self.channel}"


class IpsAlert(models.Model):
    """One Suricata alert read from a node's eve.json, with the guest it concerns when the
    packet's addresses (MAC or IP) are one of the cluster's guests'."""

    cluster = models.ForeignKey("nodes.Cluster", on_delete=models.CASCADE, related_name="ips_alerts")
    guest = models.ForeignKey("guests.Guest", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="ips_alerts")
    node = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    received = models.DateTimeField(auto_now_add=True)
    signature = models.CharField(max_length=512)
    signature_id = models.BigIntegerField(null=True, blank=True)
    category = models.CharField(max_length=256, blank=True)
    severity = models.PositiveSmallIntegerField(null=True, blank=True)
    action = models.CharField(max_length=16, blank=True)  # allowed | blocked
    proto = models.CharField(max_length=16, blank=True)
    src_ip = models.CharField(max_length=64, blank=True)
    src_port = models.PositiveIntegerField(null=True, blank=True)
    dest_ip = models.CharField(max_length=64, blank=True)
    dest_port = models.PositiveIntegerField(null=True, blank=True)
    direction = models.CharField(max_length=3, blank=True)  # in: to the guest, out: from it
    matched_by = models.CharField(max_length=8, blank=True)  # mac | ip
    flow_id = models.BigIntegerField(null=True, blank=True)
    line_hash = models.CharField(max_length=64)  # the EVE line's SHA-256: read twice, stored once

    class Meta:
        ordering = ("-timestamp", "-id")
        constraints = (models.UniqueConstraint(fields=["cluster", "node", "line_hash"], name="firewall_ipsalert_once"),)
        indexes = (models.Index(fields=["guest", "-timestamp"]), models.Index(fields=["cluster", "-timestamp"]))

    def __str__(self) -> str:
        return f"{self.signature} ({self.timestamp:%Y-%m-%d %H:%M:%S})"
