"""Django settings, all from the environment with safe production defaults.

DATABASE_URL and REDIS_URL come from the environment; when unset they come from
var/services.env, written by `python -m datacenter.localservices start` (embedded
PostgreSQL and Redis for one-machine use). See README "Configuration".
"""

import contextlib
import os
import secrets
import sys
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DATACENTER_VAR_DIR", BASE_DIR / "var"))
SERVICES_ENV_FILE = VAR_DIR / "services.env"

# pytest imports settings through pytest-django; tests get their own DB name, queue and prefixes
# so that several test runs (and a running demo) can share one PostgreSQL and one Redis.
TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks ignored); the format localservices writes."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


# Explicit environment wins; var/services.env only fills what is unset.
SERVICES_FROM_FILE: set[str] = set()
for _key, _value in read_env_file(SERVICES_ENV_FILE).items():
    if _key in {"DATABASE_URL", "REDIS_URL"} and not os.environ.get(_key):
        os.environ[_key] = _value
        SERVICES_FROM_FILE.add(_key)


def _secret_key() -> str:
    """SECRET_KEY from env, else a random key kept in var/secret_key (created once, mode 0600)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Key for EncryptedTextField; defaults to one derived from SECRET_KEY (see apps.core.fields).
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")

DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# TLS=1 when served over HTTPS (directly or behind a proxy that sets X-Forwarded-Proto).
TLS = env_bool("TLS", False)
SESSION_COOKIE_SECURE = TLS
CSRF_COOKIE_SECURE = TLS
if TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",  # before staticfiles: `runserver` serves ASGI (http + websockets)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "axes",
    "apps.core",
    "apps.proxmox",
    "apps.permissions",
    "apps.approvals",
    "apps.operations",
    "apps.nodes",
    "apps.storage",
    "apps.guests",
    "apps.gpus",
    "apps.pveaccess",
    "apps.firewall",
    "apps.ha",
    "apps.leases",
    "apps.consoles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view says otherwise (login, healthz, metrics; DRF
    # views answer 401/403 themselves).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # request.actor: who acts (user, tenant, token, roles) for apps.permissions.policy.
    "apps.permissions.policy.ActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A refused request (403): one log line and an audit entry, no traceback (apps/core/denied.py).
    "apps.core.denied.RefusedAccessMiddleware",
    # Redis down: 503 with the reason (JSON for the API) instead of a 500 page.
    "apps.operations.middleware.RedisUnavailableMiddleware",
    # Last: turns a login refused for too many failures into the lockout page / JSON 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "datacenter.urls"
WSGI_APPLICATION = "datacenter.wsgi.application"
ASGI_APPLICATION = "datacenter.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.navigation",
            ],
            # bytes_h / of_h everywhere without {% load %}: one way to show sizes (binary units).
            "builtins": ["apps.core.templatetags.units"],
        },
    },
]

# --- Services -------------------------------------------------------------------------------
_SERVICES_HINT = "set it, or run `make services` (python -m datacenter.localservices start)"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
if not DATABASE_URL:
    raise ImproperlyConfigured(f"DATABASE_URL is not set: {_SERVICES_HINT}")
if not REDIS_URL:
    raise ImproperlyConfigured(f"REDIS_URL is not set: {_SERVICES_HINT}")
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_URL must be a PostgreSQL URL (postgres://...)")

# Tests close connections after each request/task so the test database can be dropped at the end.
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if TESTING else 60, conn_health_checks=True)
}
# One test database per test run, so concurrent runs on a shared server do not drop each other's.
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("DATABASE_TEST_NAME")
    or f"test_{DATABASES['default']['NAME']}_{os.getpid()}"
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEST_RUN_ID = f"test{os.getpid()}" if TESTING else ""

CACHES = {
    "default": {
        # Reads miss and writes skip while Redis is away: pages render from PostgreSQL.
        "BACKEND": "apps.core.cache.ForgivingRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": TEST_RUN_ID or "dc",
    }
}

# Redis pub/sub: a push is published once per group and each web process, subscribed once per group,
# hands it to its own websockets in memory. The list-based layer queued one Redis entry per
# subscriber and popped them one by one (1,000 viewers of a cluster: 15 s to deliver one change;
# tests/bench/bench_fanout.py). Pushes are at most once either way: a page re-reads what it shows
# from the database when its socket (re)opens.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"asgi{TEST_RUN_ID}"},
    }
}

# --- Celery (datacenter/celery.py reads CELERY_*) ---------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = f"celery-{TEST_RUN_ID}" if TESTING else "celery"
# Syncs and refreshes (reads of Proxmox on a schedule or when a page opens) have a queue of their own,
# consumed by its own worker (`-Q sync --pool threads`: make demo, docker-compose.yml), so a slow or
# unreachable cluster holds one of its threads, never another cluster's sync or anyone's operation;
# operations stay on the default queue. A worker started without -Q consumes both (the test worker).
CELERY_SYNC_QUEUE = f"sync-{TEST_RUN_ID}" if TESTING else "sync"
CELERY_TASK_QUEUES = {CELERY_TASK_DEFAULT_QUEUE: {}, CELERY_SYNC_QUEUE: {}}
CELERY_TASK_ROUTES = {name: {"queue": CELERY_SYNC_QUEUE} for name in (
    "nodes.cluster_sync_due", "nodes.cluster_sync", "nodes.cluster_usage_refresh", "nodes.node_rrd_refresh",
    "nodes.node_versions_refresh",
    "guests.guest_refresh", "guests.snapshots_refresh", "guests.backup_job_refresh",
    "storage.storage_content_refresh", "storage.storage_content_refresh_all",
    "gpus.gpu_inventory_refresh", "gpus.gpu_inventory_refresh_all", "ha.ha_refresh", "ha.ha_refresh_all",
    "firewall.ips_alerts_read", "firewall.ips_alerts_read_all",
)}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves it for the reconciler/redelivery
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...and a killed child's message goes back to the queue
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis re-delivers an unacknowledged message after this long: longer than the longest task (a
# migration or backup may take hours), so a slow task is never run twice; the reconciler (below)
# takes over a dead worker's operation much sooner, and a duplicate delivery is a no-op anyway.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 12 * 3600))}
# Operations reconciler: seconds without a heartbeat before a running operation's worker counts
# as lost, and before a pending operation's queue message counts as lost (then sent again).
OPERATIONS_HEARTBEAT_TIMEOUT = float(os.environ.get("OPERATIONS_HEARTBEAT_TIMEOUT", "90"))
OPERATIONS_PENDING_TIMEOUT = float(os.environ.get("OPERATIONS_PENDING_TIMEOUT", "120"))
OPERATIONS_RECONCILE_INTERVAL = float(os.environ.get("OPERATIONS_RECONCILE_INTERVAL", "60"))
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Remote-control (ping, healthz) broadcast exchange; per test run so tests only see their worker.
CELERY_CONTROL_EXCHANGE = f"celery{TEST_RUN_ID}"
# Periodic work; apps add their entries here (task names are `<app>.<entity>_<action>`).
GPU_INVENTORY_INTERVAL = float(os.environ.get("GPU_INVENTORY_INTERVAL", "600"))
CELERY_BEAT_SCHEDULE: dict = {
    "operations-reconcile": {"task": "operations.operation_reconcile", "schedule": OPERATIONS_RECONCILE_INTERVAL},
    # Content lists of storages (ISOs, templates, backups): one call per storage, low frequency, of the
    # clusters someone looks at only (the sync handler queues them too while watched).
    "storage-content-refresh": {"task": "storage.storage_content_refresh_all",
                                "schedule": float(os.environ.get("STORAGE_CONTENT_REFRESH_INTERVAL", "600"))},
    # GPU inventory (PCI devices, vGPU types, mappings): a few calls per cluster, low frequency, of the
    # clusters someone looks at only (a new cluster or a node back: the sync handler queues it).
    "gpus-inventory-refresh": {"task": "gpus.gpu_inventory_refresh_all", "schedule": GPU_INVENTORY_INTERVAL},
    # HA rules, replication jobs and Ceph health: a few calls per cluster, whoever looks.
    "ha-config-refresh": {"task": "ha.ha_refresh_all", "schedule": float(os.environ.get("HA_REFRESH_INTERVAL", "60"))},
    # Cheap (one query + one Redis round trip): enqueues per-cluster syncs that are due.
    "nodes-cluster-sync-due": {"task": "nodes.cluster_sync_due", "schedule": 2.0},
    # Leases: warn, stop at expiry, delete after the grace period (apps/leases/services.py).
    "leases-sweep": {"task": "leases.lease_sweep", "schedule": float(os.environ.get("LEASE_SWEEP_INTERVAL", "60"))},
    # Suricata alerts over the clusters' SSH channels (none without a channel; apps/firewall/ips.py).
    "firewall-ips-alerts": {"task": "firewall.ips_alerts_read_all",
                            "schedule": float(os.environ.get("IPS_ALERTS_INTERVAL", "30"))},
}
# The HA refresh re-reads an HA guest's config (storages, mappings) it read itself after this long.
HA_NEEDS_MAX_AGE = float(os.environ.get("HA_NEEDS_MAX_AGE", "3600"))
IPS_ALERT_RETENTION_DAYS = int(os.environ.get("IPS_ALERT_RETENTION_DAYS", "30"))
# Owners of a guest are warned this many days before its lease ends.
LEASE_WARNING_DAYS = int(os.environ.get("LEASE_WARNING_DAYS", "7"))

# --- Inventory sync ---------------------------------------------------------------------------
SYNC_INTERVAL_ACTIVE = float(os.environ.get("SYNC_INTERVAL_ACTIVE", "5"))
SYNC_INTERVAL_IDLE = float(os.environ.get("SYNC_INTERVAL_IDLE", "60"))
# /cluster/status and the HA status are read at the idle pace while /cluster/resources shows nothing
# they report may have changed, every cycle otherwise (apps.nodes.sync.fetch_snapshot).

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "login"
# API tokens: django-rest-knox with our own model (tenant, read-only, last use); only hashes stored.
KNOX_TOKEN_MODEL = "permissions.ApiToken"
# knox's own migrations would create its unused default table (it references auth_user and blocks the
# test flush); with them off, only our swapped-in model gets a table.
MIGRATION_MODULES = {"knox": None}

# Login throttling (django-axes): AXES_FAILURE_LIMIT failed logins for one account (from any address)
# or from one address (for any account) lock that account / address out for the cool-off, a correct
# password included. Failures and lockouts are audited (apps/core/lockout.py).
AUTHENTICATION_BACKENDS = [
    "apps.core.lockout.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success must not clear the count: it would clear the address's failures against other accounts.
AXES_RESET_ON_SUCCESS = False
# Attempts refused during a lockout do not restart it: the cool-off ends when it said it would.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "apps.core.lockout.lockout_response"
AXES_VERBOSE = False  # the audit log records failures; axes need not log each one too
# REMOTE_ADDR only, like the audit log: X-Forwarded-For is client-controlled without a proxy.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# "Download from URL" for tenants: public addresses only (apps/storage/public_url.py); these CIDRs
# (comma-separated, e.g. an internal mirror's 10.0.5.0/24) are opened to them as well.
DOWNLOAD_URL_ALLOWED_NETWORKS = env_list("DOWNLOAD_URL_ALLOWED_NETWORKS")

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First: its WWW-Authenticate makes a bad, expired or revoked token (or none) a 401, not a 403.
        "apps.permissions.auth.ApiTokenAuthentication",  # knox tokens: tenant, read-only, expiry
        "rest_framework.authentication.SessionAuthentication",  # enforces CSRF for browsers
    ],
    # Auditors and read-only tokens only read (apps.permissions.policy decides who is read-only).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated",
                                   "apps.permissions.drf.ReadOnlyActorPermission"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.limits.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Per user (so per token) and, for callers not logged in, per address.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.limits.UserThrottle", "apps.core.limits.AnonThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("API_RATE_USER", "1200/minute"),
        "anon": os.environ.get("API_RATE_ANON", "60/minute"),
    },
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.AutoSchema",  # adds the error answers
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Datacenter API",
    "DESCRIPTION": "Control plane for Proxmox VE clusters. Actions answer 202 with an operation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Choice sets that share a field name ("status", "content") get a name each, not a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "GuestStatusEnum": "apps.guests.choices.GuestStatus",
        "UploadContentEnum": "apps.storage.choices.UPLOAD_CONTENT",
        # Fields named alike ("state", "type") in several apps: each choice set its own name.
        "GuestTypeEnum": "apps.guests.choices.GuestType",
        "GpuAllocationStateEnum": "apps.gpus.choices.AllocationState",
        "HaResourceStateEnum": "apps.ha.choices.ResourceState",
        "HaRuleTypeEnum": "apps.ha.choices.RuleType",
        "QuotaRequestStateEnum": "apps.permissions.choices.QuotaRequestState",
    },
}
# Bodies other than file uploads (JSON, forms) above this are refused: a JSON 413 from the API.
# File uploads (ISO images) stream to disk and are not counted.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(1024 * 1024)))
# /metrics and /healthz's details: scrapers send `Authorization: Bearer <METRICS_TOKEN>`, operators
# use their session; METRICS_PUBLIC=1 opens /metrics to anyone (README "Configuration").
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)

# --- i18n / static ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Serve straight from STATICFILES_DIRS when collectstatic has not run (demo, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# WhiteNoise streams files with a sync iterator; under ASGI Django warns about it on every file.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
# WhiteNoise warns about a missing STATIC_ROOT until collectstatic runs; an empty one is fine.
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

DJANGO_TABLES2_TEMPLATE = "generic/table.html"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "filters": {"drop_forbidden": {"()": "apps.core.denied.DropForbidden"}},
    "loggers": {"django.db.backends": {"level": "WARNING"},
                # 403s are logged once, without traceback, by apps.core.denied.
                "django.request": {"filters": ["drop_forbidden"]}},
}
