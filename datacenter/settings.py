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
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_tables2",
    "django_htmx",
    "apps.core",
    "apps.proxmox",
    "apps.operations",
    "apps.nodes",
    "apps.storage",
    "apps.guests",
    "apps.gpus",
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
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": TEST_RUN_ID or "dc",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis's
        # blocking BZPOPMIN: the two race and receive() dies with "Timeout reading". Give reads room.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"asgi{TEST_RUN_ID}"},
    }
}

# --- Celery (datacenter/celery.py reads CELERY_*) ---------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = f"celery-{TEST_RUN_ID}" if TESTING else "celery"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-task leaves it for the reconciler/redelivery
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Remote-control (ping, healthz) broadcast exchange; per test run so tests only see their worker.
CELERY_CONTROL_EXCHANGE = f"celery{TEST_RUN_ID}"
# Periodic work; apps add their entries here (task names are `<app>.<entity>_<action>`).
GPU_INVENTORY_INTERVAL = float(os.environ.get("GPU_INVENTORY_INTERVAL", "600"))
CELERY_BEAT_SCHEDULE: dict = {
    "operations-reconcile": {"task": "operations.operation_reconcile", "schedule": 60.0},
    # Content lists of storages (ISOs, templates, backups): one call per storage, low frequency.
    "storage-content-refresh": {"task": "storage.storage_content_refresh_all",
                                "schedule": float(os.environ.get("STORAGE_CONTENT_REFRESH_INTERVAL", "600"))},
    # GPU inventory (PCI devices, vGPU types, mappings): a few calls per cluster, low frequency.
    "gpus-inventory-refresh": {"task": "gpus.gpu_inventory_refresh_all", "schedule": GPU_INVENTORY_INTERVAL},
    # Cheap (one query + one Redis round trip): enqueues per-cluster syncs that are due.
    "nodes-cluster-sync-due": {"task": "nodes.cluster_sync_due", "schedule": 2.0},
}

# --- Inventory sync ---------------------------------------------------------------------------
SYNC_INTERVAL_ACTIVE = float(os.environ.get("SYNC_INTERVAL_ACTIVE", "5"))
SYNC_INTERVAL_IDLE = float(os.environ.get("SYNC_INTERVAL_IDLE", "60"))

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

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",  # enforces CSRF for browsers
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
}
# /metrics is open unless this is set; then scrapers send `Authorization: Bearer <token>`.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

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
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
