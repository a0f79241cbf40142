"""Settings come from the environment with safe defaults; var/services.env fills DATABASE_URL /
REDIS_URL only when they are unset. Each case imports settings in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django.conf as c, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'datacenter.settings');"
    "s = c.settings; print(json.dumps({k: str(getattr(s, k, None)) for k in "
    "['DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'ALLOWED_HOSTS',"
    " 'DATABASE_URL', 'REDIS_URL', 'CSRF_TRUSTED_ORIGINS', 'SECRET_KEY']}))"
)


def load_settings(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in {
        "DEBUG", "TLS", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "SECRET_KEY", "CSRF_TRUSTED_ORIGINS"}}
    base.update(DATACENTER_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="datacenter.settings")
    base.update(env)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=base, capture_output=True, text=True)
    return result


def probe(tmp_path, **env) -> dict:
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


URLS = {"DATABASE_URL": "postgres://u@db.example:5432/dc", "REDIS_URL": "redis://cache.example:6379/0"}


def test_production_defaults(tmp_path):
    values = probe(tmp_path, **URLS)
    assert values["DEBUG"] == "False"
    assert values["SESSION_COOKIE_SECURE"] == "False"
    assert values["ALLOWED_HOSTS"] == "['localhost', '127.0.0.1', '[::1]']"


def test_debug_only_when_asked(tmp_path):
    assert probe(tmp_path, DEBUG="1", **URLS)["DEBUG"] == "True"
    assert probe(tmp_path, DEBUG="0", **URLS)["DEBUG"] == "False"


def test_tls_makes_cookies_secure_and_trusts_forwarded_proto(tmp_path):
    values = probe(tmp_path, TLS="1", CSRF_TRUSTED_ORIGINS="https://dc.example", **URLS)
    assert values["SESSION_COOKIE_SECURE"] == "True"
    assert values["CSRF_COOKIE_SECURE"] == "True"
    assert values["SECURE_PROXY_SSL_HEADER"] == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert values["CSRF_TRUSTED_ORIGINS"] == "['https://dc.example']"


def test_services_env_fills_unset_urls_and_env_wins(tmp_path):
    (tmp_path / "services.env").write_text(
        "# comment\nDATABASE_URL=postgres://postgres@127.0.0.1:5999/datacenter\nREDIS_URL=redis://127.0.0.1:6999/0\n"
    )
    values = probe(tmp_path)
    assert values["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5999/datacenter"
    assert values["REDIS_URL"] == "redis://127.0.0.1:6999/0"
    values = probe(tmp_path, REDIS_URL="redis://elsewhere:6379/1")
    assert values["REDIS_URL"] == "redis://elsewhere:6379/1"
    assert values["DATABASE_URL"] == "postgres://postgres@127.0.0.1:5999/datacenter"


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_missing_service_url_is_a_clear_error(tmp_path, missing):
    env = {k: v for k, v in URLS.items() if k != missing}
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    assert "make services" in result.stderr


def test_sqlite_is_refused(tmp_path):
    result = load_settings(tmp_path, DATABASE_URL="sqlite:///x.db", REDIS_URL=URLS["REDIS_URL"])
    assert result.returncode != 0
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr


def test_secret_key_generated_once_and_kept_private(tmp_path):
    first = probe(tmp_path, **URLS)["SECRET_KEY"]
    assert len(first) >= 50
    assert probe(tmp_path, **URLS)["SECRET_KEY"] == first
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    assert probe(tmp_path, SECRET_KEY="from-env", **URLS)["SECRET_KEY"] == "from-env"


def test_security_middleware_in_place(settings):
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    assert "django.contrib.auth.middleware.LoginRequiredMiddleware" in settings.MIDDLEWARE
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    # Real Redis across processes, never the in-memory layer; pub/sub: one PUBLISH per group (fan-out).
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
