# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import include, path

from . import quota_views, views

app_name = "guests"

urlpatterns = [
    path("guests/", views.GuestListView.as_view(), name="guest_list"),
    path("guests/bulk/", views.GuestBulkPowerView.as_view(), name="guest_bulk_power"),
    path("guests/<int:pk>/", views.GuestDetailView.as_view(), name="guest"),
    path("guests/<int:pk>/details/", views.GuestDetailsView.as_view(), name="guest_details"),
    path("guests/<int:pk>/power/", views.GuestPowerView.as_view(), name="guest_power"),
    path("", include("apps.guests.actions.backups")),
    path("", include("apps.guests.actions.migrate")),
    path("", include("apps.guests.actions.config")),
    path("", include("apps.guests.actions.snapshots")),
    path("", include("apps.guests.actions.clone")),
    path("", include("apps.guests.actions.create")),
    path("guests/create/quota/", quota_views.CreateQuotaBarsView.as_view(), name="guest_create_quota"),
]
