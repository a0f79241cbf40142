from django.urls import path

from . import views

app_name = "nodes"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("clusters/", views.ClusterListView.as_view(), name="cluster_list"),
    path("clusters/add/", views.ClusterCreateView.as_view(), name="cluster_add"),
    path("clusters/fingerprint/", views.ClusterFingerprintView.as_view(), name="cluster_fingerprint"),
    path("clusters/<int:pk>/", views.ClusterDetailView.as_view(), name="cluster"),
    path("clusters/<int:pk>/edit/", views.ClusterEditView.as_view(), name="cluster_edit"),
    path("clusters/<int:pk>/delete/", views.ClusterDeleteView.as_view(), name="cluster_delete"),
    path("clusters/<int:pk>/sync/", views.ClusterSyncView.as_view(), name="cluster_sync"),
    path("nodes/", views.NodeListView.as_view(), name="node_list"),
    path("nodes/<int:pk>/", views.NodeDetailView.as_view(), name="node"),
]
