from django.db import models


class TlsMode(models.TextChoices):
    VERIFY = "verify", "Verify (CA certificate)"
    PIN = "pin", "Pin fingerprint"
    INSECURE = "insecure", "Insecure (no verification)"


class ClusterStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # registered, first sync not done yet
    OK = "ok", "OK"
    UNREACHABLE = "unreachable", "Unreachable"
    AUTH_FAILED = "auth_failed", "Auth failed"


class NodeStatus(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    UNKNOWN = "unknown", "Unknown"
