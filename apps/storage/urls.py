# UI routes, mounted at the site root by datacenter/urls.py.
from django.urls import path

from . import views

app_name = "storage"

urlpatterns = [
    path("storage/", views.StorageListView.as_view(), name="storage_list"),
    path("storage/<int:pk>/", views.StorageDetailView.as_view(), name="storage"),
    path("storage/<int:pk>/content/", views.StorageContentView.as_view(), name="storage_content"),
    path("storage/<int:pk>/refresh/", views.StorageRefreshView.as_view(), name="storage_refresh"),
    path("storage/<int:pk>/upload/", views.StorageUploadView.as_view(), name="storage_upload"),
    path("storage/<int:pk>/download-url/", views.StorageDownloadUrlView.as_view(), name="storage_download_url"),
]
