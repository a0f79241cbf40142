from django.urls import path

from . import views

app_name = "core"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("audit/", views.AuditEntryListView.as_view(), name="auditentry_list"),
    path("audit/export.csv", views.AuditEntryExportView.as_view(), name="auditentry_export"),
    path("audit/<int:pk>/", views.AuditEntryView.as_view(), name="auditentry"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
]
