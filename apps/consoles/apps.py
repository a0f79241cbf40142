from django.apps import AppConfig


class ConsolesConfig(AppConfig):
    name = "apps.consoles"
    label = "consoles"
    verbose_name = "Consoles"

    def ready(self):
        from apps.permissions import policy

        from . import services

        # A tenant whose consoles the operators withheld: its users are refused (operators are not).
        policy.register_gate("guest.console", services.console_gate)
