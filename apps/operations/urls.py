# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "operations"

urlpatterns = [
    path("operations/", views.OperationListView.as_view(), name="operation_list"),
    path("operations/<uuid:pk>/", views.OperationDetailView.as_view(), name="operation"),
    path("operations/<uuid:pk>/cancel/", views.OperationCancelView.as_view(), name="operation_cancel"),
]
