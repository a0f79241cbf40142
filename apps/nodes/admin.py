from django.contrib import admin

from .models import Cluster, Node


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "api_url", "tls_mode", "status", "quorate", "last_sync_at"]
    list_filter = ["status", "tls_mode"]
    search_fields = ["name", "api_url"]
    # The secret is never shown; edit it through the cluster form (which tests the connection).
    exclude = ["token_secret", "root_password"]
    readonly_fields = ["status", "last_error", "last_sync_at", "last_attempt_at", "next_sync_at", "failures",
                       "last_sync_duration", "quorate", "pve_version", "pve_cluster_name"]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "cluster", "status", "ip", "ha_state"]
    list_filter = ["cluster", "status"]
    search_fields = ["name"]
