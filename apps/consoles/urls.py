from django.urls import path

from . import views

app_name = "consoles"

urlpatterns = [
    path("guests/<int:pk>/console/", views.GuestConsoleView.as_view(), name="guest_console"),
    path("nodes/<int:pk>/console/", views.NodeConsoleView.as_view(), name="node_console"),
]
