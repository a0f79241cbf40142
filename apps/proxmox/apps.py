from django.apps import AppConfig


class ProxmoxConfig(AppConfig):
    name = "apps.proxmox"
    label = "proxmox"
    verbose_name = "Proxmox client"
