from django.apps import AppConfig


class FirewallConfig(AppConfig):
    """Proxmox's firewall at datacenter, node and guest level. The rules live in Proxmox, read when
    someone looks and changed through apps.proxmox.firewall; the portal keeps only the tenants'
    default groups for new guests, the clusters' SSH channels for IPS (Suricata), and the IPS alerts
    read from the nodes."""

    name = "apps.firewall"
    label = "firewall"
    verbose_name = "Firewall"

    def ready(self):
        from apps.guests.actions.create import extensions
        from apps.permissions import policy

        from .defaults import CreateExtension
        from .models import DefaultGroup, IpsAlert

        policy.register_scope(DefaultGroup, lambda actor: policy.tenant_q(actor))
        # A tenant sees the alerts of its guests (the guest's tenant now, not when it was stored);
        # SSH channels and their nodes have no scope: tenants see none.
        policy.register_scope(IpsAlert, lambda actor: policy.tenant_q(actor, "guest__tenant"))
        extensions.register(CreateExtension())  # new guests get their tenant's default groups
