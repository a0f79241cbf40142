from django.apps import AppConfig


class PermissionsConfig(AppConfig):
    name = "apps.permissions"
    label = "permissions"
    verbose_name = "Tenants and permissions"

    def ready(self):
        from apps.core import live, scoping

        from . import policy, scopes

        # core asks its questions (scope_queryset, is_operator) through the policy.
        scoping.register_policy(visible=policy.visible, is_operator=policy.actor_is_operator,
                                serving=policy.serving, done_serving=policy.done_serving, can=policy.can)
        scopes.register()
        scopes.connect_signals()
        live.register_group("tenant", scopes.may_subscribe_tenant)
        live.register_audience(scopes.audience_groups)
