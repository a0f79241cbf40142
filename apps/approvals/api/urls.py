# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import ApprovalRequestViewSet

app_name = "approvals-api"

router = SimpleRouter()
router.register("approvals", ApprovalRequestViewSet, basename="approval")

urlpatterns = router.urls
