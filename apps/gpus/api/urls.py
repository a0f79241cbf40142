# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import GpuDeviceViewSet, PciMappingViewSet

app_name = "gpus-api"

router = SimpleRouter()
router.register("gpu-mappings", PciMappingViewSet, basename="pcimapping")
router.register("gpus", GpuDeviceViewSet, basename="gpudevice")
urlpatterns = router.urls
