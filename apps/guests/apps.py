from django.apps import AppConfig


class GuestsConfig(AppConfig):
    name = "apps.guests"
    label = "guests"
    verbose_name = "Guests"

    def ready(self):
        from apps.core import live
        from apps.nodes import sync

        from . import services
        from .selectors import guest_list

        # Guests come from the sync cycle's /cluster/resources; no call per guest.
        sync.register_handler("guests", services.guest_sync)
        # `guest-<pk>`: the guest page listens for fresh details.
        live.register_group("guest", lambda user, key: key.isdigit() and
                            guest_list(user=user).filter(pk=int(key)).exists())
