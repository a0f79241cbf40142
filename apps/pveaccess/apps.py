from django.apps import AppConfig


class PveAccessConfig(AppConfig):
    name = "apps.pveaccess"
    label = "pveaccess"
    verbose_name = "Proxmox access management"
