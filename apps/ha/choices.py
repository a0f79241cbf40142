from django.db import models


class ResourceState(models.TextChoices):
    """What an HA resource is asked to be (its `state` in resources.cfg)."""

    STARTED = "started", "started"
    STOPPED = "stopped", "stopped"
    DISABLED = "disabled", "disabled"
    IGNORED = "ignored", "ignored"


class RuleType(models.TextChoices):
    NODE_AFFINITY = "node-affinity", "node affinity"
    RESOURCE_AFFINITY = "resource-affinity", "resource affinity"


class Affinity(models.TextChoices):
    POSITIVE = "positive", "keep together"
    NEGATIVE = "negative", "keep apart"


class EventKind(models.TextChoices):
    NODE_LOST = "node_lost", "node lost"
    NODE_BACK = "node_back", "node back"
    QUORUM_LOST = "quorum_lost", "quorum lost"
    QUORUM_REGAINED = "quorum_regained", "quorum regained"
    FENCE = "fence", "fence"
    RECOVERY = "recovery", "recovery"
    STARTED = "started", "started"
    STOPPED = "stopped", "stopped"
    MIGRATE = "migrate", "migrate"
    RELOCATE = "relocate", "relocate"
    ERROR = "error", "error"
    MAINTENANCE_ON = "maintenance_on", "maintenance on"
    MAINTENANCE_OFF = "maintenance_off", "maintenance off"
    MASTER = "master", "new CRM master"


# How bad each kind looks on the timeline (badge class).
EVENT_LEVEL = {
    EventKind.NODE_LOST: "danger", EventKind.QUORUM_LOST: "danger", EventKind.FENCE: "danger",
    EventKind.ERROR: "danger", EventKind.RECOVERY: "warning", EventKind.MAINTENANCE_ON: "warning",
    EventKind.MIGRATE: "info", EventKind.RELOCATE: "info", EventKind.MASTER: "info",
}
