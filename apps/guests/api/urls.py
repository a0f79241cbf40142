# API routes, mounted at /api/v1/ by datacenter/urls.py.
from rest_framework.routers import SimpleRouter

from ..actions import backups, create, migrate
from ..actions import clone, snapshots
from ..actions import config as config_actions
from .views import GuestViewSet, SnapshotViewSet

app_name = "guests-api"

router = SimpleRouter()
router.register("guests", GuestViewSet, basename="guest")
router.register("snapshots", SnapshotViewSet, basename="snapshot")
# Action routes first: `guests/create-vm/` would otherwise match the guest-detail route.
urlpatterns = [*create.api_urlpatterns] + router.urls + backups.api_urlpatterns + migrate.api_urlpatterns
urlpatterns += config_actions.api_urlpatterns + snapshots.api_urlpatterns + clone.api_urlpatterns
