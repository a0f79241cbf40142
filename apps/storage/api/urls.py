# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import StorageContentViewSet, StorageViewSet

app_name = "storage-api"

router = SimpleRouter()
router.register("storage-content", StorageContentViewSet, basename="storagecontent")
router.register("storage", StorageViewSet, basename="storage")
urlpatterns = router.urls
