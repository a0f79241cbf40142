# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import GpuAllocationViewSet, GpuDeviceViewSet, GpuProfileViewSet, PciMappingViewSet

app_name = "gpus-api"

router = SimpleRouter()
router.register("gpu-mappings", PciMappingViewSet, basename="pcimapping")
router.register("gpus", GpuDeviceViewSet, basename="gpudevice")
router.register("gpu-profiles", GpuProfileViewSet, basename="gpuprofile")
router.register("gpu-allocations", GpuAllocationViewSet, basename="gpuallocation")
urlpatterns = router.urls
