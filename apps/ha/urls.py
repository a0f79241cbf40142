# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "ha"

urlpatterns = [
    path("ha/", views.HaPageView.as_view(), name="index"),
    path("ha/events/", views.HaEventListView.as_view(), name="haevent_list"),
    path("ha/clusters/<int:ha_cluster>/rules/add/", views.HaRuleEditView.as_view(), name="harule_add"),
    path("ha/rules/<int:ha_rule>/", views.HaRuleEditView.as_view(), name="harule_edit"),
    path("ha/rules/<int:ha_rule>/delete/", views.HaRuleDeleteView.as_view(), name="harule_delete"),
    path("ha/guests/<int:ha_guest>/", views.GuestHaView.as_view(), name="guest_ha"),
    path("ha/guests/<int:ha_guest>/remove/", views.GuestHaRemoveView.as_view(), name="guest_ha_remove"),
    path("ha/guests/<int:ha_guest>/move/", views.GuestHaMoveView.as_view(), name="guest_ha_move"),
    path("ha/guests/bulk/", views.HaBulkView.as_view(), name="guest_ha_bulk"),
    path("ha/clusters/<int:ha_cluster>/replication/add/", views.ReplicationCreateView.as_view(), name="replication_add"),
    path("ha/replication/<int:ha_job>/", views.ReplicationEditView.as_view(), name="replication_edit"),
    path("ha/replication/<int:ha_job>/delete/", views.ReplicationDeleteView.as_view(), name="replication_delete"),
    path("ha/nodes/<int:ha_node>/maintenance/", views.NodeMaintenanceView.as_view(), name="node_maintenance"),
]
