from django.apps import AppConfig


class ProxmoxConfig(AppConfig):
    name = "apps.proxmox"
    label = "proxmox"
    verbose_name = "Proxmox client"

    def ready(self):
        from apps.core import metrics as core_metrics

        from . import metrics

        core_metrics.register_lines(metrics.prometheus_lines)
