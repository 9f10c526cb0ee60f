"""Settings for the magnet ledger: one module, driven by environment variables.

Every setting is listed with its default and meaning in deploy/ENVIRONMENT.md. With
DATABASE_URL and REDIS_URL unset the service runs on its embedded default: SQLite and
Celery tasks executed in-process.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    """Read a boolean: true/false, 1/0, yes/no, on/off; refuse anything else."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def envint(name: str, default: int) -> int:
    """Read an integer; refuse anything else."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def envlist(name: str, default: list[str]) -> list[str]:
    """Read a comma-separated list."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED = not DATABASE_URL

DEBUG = envbool("DEBUG", EMBEDDED)
VAR_DIR = Path(os.environ.get("LEDGER_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "embedded-demo-only-not-secret"  # noqa: S105 - only with DEBUG on

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "accounts",
    "ledger",
    "api",
    "checks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "api.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ledger.urls"
WSGI_APPLICATION = "ledger.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60), conn_health_checks=True
        )
    }
else:
    # A fresh checkout has no var/ yet; SQLite cannot create the directory itself.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(VAR_DIR / "ledger.sqlite3")),
            # IMMEDIATE takes the write lock at BEGIN, so two submitters cannot both read
            # the log head and then race to append.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(VAR_DIR / "static"))
# gunicorn serves the admin's and the API docs' static files itself (after collectstatic);
# no manifest, so a missing collectstatic degrades styling instead of raising.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# A bulk of 1,000 realistic envelopes is about 0.7 MB; 2 MB leaves room, and more is a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("LEDGER_MAX_BODY_BYTES", 2 * 1024 * 1024)
LEDGER_MAX_BULK = envint("LEDGER_MAX_BULK", 1000)
# How far in the future an entry's occurred_at may lie (clock skew between systems).
LEDGER_MAX_CLOCK_SKEW_SECONDS = envint("LEDGER_MAX_CLOCK_SKEW_SECONDS", 300)

# The log's identity: its origin line in checkpoints and the service's Ed25519 log key,
# which signs key registrations, revocations and checkpoints.
LEDGER_LOG_ORIGIN = os.environ.get("LEDGER_LOG_ORIGIN", "localhost/magnet-ledger")
LEDGER_LOG_KEY_FILE = os.environ.get("LEDGER_LOG_KEY_FILE", str(VAR_DIR / "log-key.pem"))
LEDGER_LOG_KEY_AUTOCREATE = envbool("LEDGER_LOG_KEY_AUTOCREATE", EMBEDDED)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Recycled-Magnet Ledger API",
    "DESCRIPTION": (
        "Chain of custody for recycled rare-earth magnet material. Every custody step is an "
        "Ed25519-signed envelope appended to a hash-chained, Merkle-verifiable log."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Celery: Redis in production; in the embedded default tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# Publish a checkpoint right after each submission commits: the embedded default, where no
# beat runs. In production beat publishes every 30 s and submissions stay cheap.
LEDGER_CHECKPOINT_ON_COMMIT = envbool("LEDGER_CHECKPOINT_ON_COMMIT", CELERY_TASK_ALWAYS_EAGER)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Beat: sign a checkpoint over the entries appended since the last one (a no-op while the
# log does not grow), so every entry is covered within a minute (DESIGN "Checkpoint").
CELERY_BEAT_SCHEDULE = {
    # Mass-balance checks (checks.tasks): pending checks whose message was lost, the
    # unreceived-shipment sweep, the incremental integrity sweep, the daily full sweep and
    # webhook deliveries that are due again.
    "checks-drain-pending": {"task": "checks.drain_pending", "schedule": 60.0},
    "checks-sweep-unreceived": {"task": "checks.sweep_unreceived", "schedule": 3600.0},
    "checks-sweep-integrity": {"task": "checks.sweep_integrity", "schedule": 300.0},
    "checks-sweep-full": {"task": "checks.sweep_full", "schedule": 86400.0},
    "checks-retry-deliveries": {"task": "checks.retry_deliveries", "schedule": 60.0},
    "publish-checkpoint": {"task": "ledger.publish_checkpoint", "schedule": 30.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
}

if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
