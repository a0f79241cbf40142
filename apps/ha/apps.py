from django.apps import AppConfig
from django.db.models import Q


class HaConfig(AppConfig):
    name = "apps.ha"
    label = "ha"
    verbose_name = "High availability"

    def ready(self):
        from apps.core import live
        from apps.nodes import presence, sync
        from apps.permissions import policy

        from . import selectors
        from .models import HaEvent, HaResource, ReplicationJob
        from .sync import sync_ha

        # No Proxmox call in the handler: it reads the snapshot the cycle already made.
        sync.register_handler("ha", sync_ha)
        # `ha-<cluster id>`: the HA page. Its viewers count as the cluster's watchers, so the sync
        # runs at the active interval while the page is open (the cost stays one cycle per cluster).
        live.register_group("ha", lambda user, key: selectors.ha_page_visible(user=user, cluster_id=key, manage=True))
        live.register_group("haview", lambda user, key: selectors.ha_page_visible(user=user, cluster_id=key))
        for prefix in ("ha", "haview"):
            live.register_presence(prefix, lambda groups, channel, present=True: presence.watch(
                ["cluster-" + g.split("-", 1)[1] for g in groups], channel, present))
        # `haguest-<guest pk>.<audience>`: a guest page's HA panel, one rendering per audience
        # (apps.ha.live); watched groups only are rendered and pushed.
        from . import live as ha_live

        live.register_group(ha_live.GUEST_PREFIX, ha_live.may_watch_guest)
        live.register_presence(ha_live.GUEST_PREFIX, presence.watch)
        # Tenants see the HA state, events and replication of their own guests only.
        policy.register_scope(HaResource, lambda actor: Q(guest__tenant_id=actor.tenant_id)
                              if actor.tenant_id else Q(pk__in=[]))
        policy.register_scope(HaEvent, lambda actor: policy.tenant_q(actor))
        policy.register_scope(ReplicationJob, lambda actor: Q(guest__tenant_id=actor.tenant_id)
                              if actor.tenant_id else Q(pk__in=[]))
