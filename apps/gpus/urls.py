# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "gpus"

urlpatterns = [
    path("gpus/", views.GpuDeviceListView.as_view(), name="gpudevice_list"),
    path("gpus/refresh/", views.GpuRefreshView.as_view(), name="gpu_refresh"),
]
