"""ConsoleSession: one browser console relayed to Proxmox (the audit of who watched what, from
where, when and how much); TenantConsoleSetting: operators withhold consoles from a tenant."""

from django.conf import settings
from django.db import models


class ConsoleKind(models.TextChoices):
    VM = "qemu", "VM display (noVNC)"
    CT = "lxc", "Container terminal"
    NODE = "node", "Node shell"


class ConsoleSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    tenant = models.ForeignKey("permissions.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    guest = models.ForeignKey("guests.Guest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    node = models.ForeignKey("nodes.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target = models.CharField(max_length=200)  # "VM 100 (web-01) on demo" kept when the guest goes
    kind = models.CharField(max_length=4, choices=ConsoleKind.choices)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    seen_at = models.DateTimeField(auto_now_add=True)  # refreshed while open: a crashed relay's rows age out
    ended_at = models.DateTimeField(null=True, blank=True)
    bytes_in = models.BigIntegerField(default=0)  # browser -> Proxmox
    bytes_out = models.BigIntegerField(default=0)  # Proxmox -> browser
    end_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["user", "ended_at"])]

    def __str__(self) -> str:
        return f"{self.username} @ {self.target}"


class TenantConsoleSetting(models.Model):
    tenant = models.OneToOneField("permissions.Tenant", on_delete=models.CASCADE, related_name="console_setting")
    enabled = models.BooleanField(default=True, help_text="the tenant's users may open their guests' consoles")

    def __str__(self) -> str:
        return f"{self.tenant}: consoles {'allowed' if self.enabled else 'withheld'}"
