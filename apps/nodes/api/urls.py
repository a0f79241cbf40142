# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import ClusterViewSet, NodeViewSet

app_name = "nodes-api"

router = SimpleRouter()
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("nodes", NodeViewSet, basename="node")
urlpatterns = router.urls
