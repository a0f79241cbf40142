# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from .views import (
    HaClusterStateViewSet,
    HaEventViewSet,
    HaResourceViewSet,
    HaRuleViewSet,
    ReplicationJobViewSet,
)

app_name = "ha-api"

router = SimpleRouter()
router.register("ha/clusters", HaClusterStateViewSet, basename="haclusterstate")
router.register("ha/resources", HaResourceViewSet, basename="haresource")
router.register("ha/rules", HaRuleViewSet, basename="harule")
router.register("ha/events", HaEventViewSet, basename="haevent")
router.register("ha/replication", ReplicationJobViewSet, basename="replicationjob")
urlpatterns = router.urls
