# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import OperationViewSet

app_name = "operations-api"

router = SimpleRouter()
router.register("operations", OperationViewSet, basename="operation")
urlpatterns = router.urls
