# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import LeaseViewSet

app_name = "leases-api"

router = SimpleRouter()
router.register("leases", LeaseViewSet, basename="lease")

urlpatterns = router.urls
