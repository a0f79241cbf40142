# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "leases"

urlpatterns = [
    path("leases/", views.LeaseListView.as_view(), name="lease_list"),
    path("leases/<int:pk>/extend/", views.LeaseExtendView.as_view(), name="lease_extend"),
    path("guests/<int:pk>/lease/", views.GuestLeaseSetView.as_view(), name="guest_lease_set"),
]
