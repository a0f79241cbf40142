# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "gpus"

urlpatterns = [
    path("gpus/", views.GpuDeviceListView.as_view(), name="gpudevice_list"),
    path("gpus/refresh/", views.GpuRefreshView.as_view(), name="gpu_refresh"),
    path("gpus/profiles/", views.GpuProfileListView.as_view(), name="gpuprofile_list"),
    path("gpus/profiles/add/", views.GpuProfileEditView.as_view(), name="gpuprofile_add"),
    path("gpus/profiles/<int:pk>/", views.GpuProfileEditView.as_view(), name="gpuprofile"),
    path("gpus/profiles/<int:pk>/delete/", views.GpuProfileDeleteView.as_view(), name="gpuprofile_delete"),
    path("gpus/guests/<int:guest_pk>/attach/", views.GpuAttachView.as_view(), name="gpu_attach"),
    path("gpus/allocations/<int:pk>/detach/", views.GpuDetachView.as_view(), name="gpu_detach"),
]
