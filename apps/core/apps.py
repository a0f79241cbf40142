from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        from . import live, lockout  # noqa: F401  (lockout connects the login audit receivers)

        live.register_group("user", live.own_user_group)
        from .rendering import compile_template_columns_once

        compile_template_columns_once()
