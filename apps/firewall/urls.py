# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "firewall"

urlpatterns = [
    path("firewall/", views.FirewallIndexView.as_view(), name="index"),
    path("guests/<int:pk>/firewall/", views.FirewallPageView.as_view(kind="guest"), name="guest"),
    path("guests/<int:pk>/firewall/effective/", views.EffectivePageView.as_view(), name="guest_effective"),
    path("guests/<int:pk>/firewall/ips/alerts/", views.IpsAlertsFragmentView.as_view(), name="guest_ips_alerts"),
    path("firewall/ips/", views.IpsAlertsPageView.as_view(), name="ips_alerts"),
    path("clusters/<int:pk>/firewall/ssh/", views.SshChannelView.as_view(), name="ssh_channel"),
    path("nodes/<int:pk>/firewall/", views.FirewallPageView.as_view(kind="node"), name="node"),
    path("clusters/<int:pk>/firewall/", views.FirewallPageView.as_view(kind="cluster"), name="datacenter"),
    path("clusters/<int:pk>/firewall/groups/", views.FirewallPageView.as_view(kind="groups"), name="groups"),
    path("clusters/<int:pk>/firewall/groups/<str:group>/", views.FirewallPageView.as_view(kind="group"),
         name="group"),
]
