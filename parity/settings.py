"""Parity settings, read from the environment (see README, "Configuration").

No DATABASE_URL → an SQLite file beside manage.py, so a fresh checkout runs as-is.
DATABASE_URL=postgres://… → PostgreSQL through psycopg 3.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from parity.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY to a long random "
            "string, or DEBUG=1 for local development."
        )
    # Development only: DEBUG is on, nothing here is served to the world.
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotation",
    "guidelines",
    "active_learning",
    "axes",
    "csp",
]

MIDDLEWARE = [
    # X-Request-ID in, out and on every log line of the request.
    "annotation.request_id.RequestIdMiddleware",
    # /healthz and /readyz: before host checks and the HTTPS redirect (annotation/health.py).
    "annotation.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # NUL bytes in query parameters (400) and database errors (503, Retry-After).
    "annotation.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Session expiry and 405s inside the page: parity/pages.py.
    "parity.pages.RefusalPagesMiddleware",
    # Login throttling (django-axes): last, as its documentation asks.
    "axes.middleware.AxesMiddleware",
]

# Django's ModelBackend; the user every request loads is read without the ORM.
# django-axes first: it refuses a login while the username (from that address) is locked out.
AUTHENTICATION_BACKENDS = ["parity.auth.LoginThrottleBackend", "parity.auth.ModelBackend"]

# Login throttling: after AXES_FAILURE_LIMIT wrong passwords for one username from one
# address, that pair is locked for AXES_COOLOFF_MINUTES (a success resets the count). Behind
# nginx every request comes from nginx's address, so the lock is then per username.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False

ROOT_URLCONF = "parity.urls"
WSGI_APPLICATION = "parity.wsgi.application"
ASGI_APPLICATION = "parity.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Writers wait for each other instead of failing at once with "database is locked"; WAL
# lets the demo server's threads read while one of them writes.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
_database_url = env_str("DATABASE_URL")
if _database_url:
    if not _database_url.startswith(("postgres://", "postgresql://", "sqlite://")):
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgres:// (or sqlite://), not {_database_url.split(':', 1)[0]!r}."
        )
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            # A kept connection that the server dropped (restart, failover, pg_terminate_backend)
            # is noticed and replaced before a request uses it, instead of failing that request.
            conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters sent apart from the SQL (server-side binding), and a statement run
    # DB_PREPARE_THRESHOLD times on a connection prepared there: PostgreSQL then parses and
    # plans it once per connection, not once per run. An htmx submit with its next card is
    # a dozen small statements, and this cut PostgreSQL's CPU for it by 40 % (measured
    # in-process; bench/README.md). Behind a pooler in transaction mode that cannot keep
    # prepared statements (PgBouncer before 1.21, or without max_prepared_statements), set
    # DB_PREPARED_STATEMENTS=0. A column type changed by a migration invalidates what
    # running workers prepared: restart them after migrating (README, "PostgreSQL").
    if env_bool("DB_PREPARED_STATEMENTS", True):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 5)
        )
    # Parallel test runs (developers, helpers, CI) each get their own test database.
    DATABASES["default"].setdefault("TEST", {})
    DATABASES["default"]["TEST"].setdefault(
        "NAME", env_str("TEST_DATABASE_NAME") or f"test_parity_{os.getpid()}"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Mail (password reset): without EMAIL_HOST no mail is sent and password reset is not offered.
EMAIL_HOST = env_str("EMAIL_HOST", "") or ""
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "parity@localhost") or "parity@localhost"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
CSRF_FAILURE_VIEW = "parity.pages.csrf_failure"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Interface languages. The page direction follows the interface language
# (LANGUAGE_BIDI in the templates); item text always carries its own lang/dir.
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("ar", _("Arabic")),
    ("de", _("German")),
    ("he", _("Hebrew")),
    ("hi", _("Hindi")),
    ("sw", _("Swahili")),
    ("zh-hans", _("Simplified Chinese")),
    ("fa", _("Persian")),
    ("es", _("Spanish")),
    ("fr", _("French")),
    ("pt-br", _("Brazilian Portuguese")),
    ("ru", _("Russian")),
    ("ja", _("Japanese")),
    ("id", _("Indonesian")),
    ("bn", _("Bengali")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Development and tests serve static files through whitenoise without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG or env_bool("WHITENOISE_USE_FINDERS", False)

# Security: strict by default when DEBUG is off; `manage.py check --deploy` is clean.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy (django-csp): scripts only from our own static files (no inline
# script, no eval: htmx is configured for it in base.html), nothing framed, forms post
# only here. Style attributes stay allowed (a CSS variable on the rating scale).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"

# Request size: bulk imports stream up to 100,000 lines; anything larger is refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
PARITY_MAX_IMPORT_BYTES = env_int("PARITY_MAX_IMPORT_BYTES", 256 * 1024 * 1024)
PARITY_MAX_IMPORT_LINES = env_int("PARITY_MAX_IMPORT_LINES", 100_000)
PARITY_MAX_TEXT_CHARS = env_int("PARITY_MAX_TEXT_CHARS", 100_000)
# The language check (lingua) on imported items runs after the import commits; off for
# bulk benchmarks that measure the import alone.
PARITY_LANGUAGE_CHECK = env_bool("PARITY_LANGUAGE_CHECK", True)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Pipelines send `Authorization: Bearer <token>`; browsers use the session (with CSRF).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["annotation.api.parsers.LimitedJSONParser"],
    "EXCEPTION_HANDLER": "annotation.api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "annotation.api.throttling.TokenRateThrottle",
        "annotation.api.throttling.SessionUserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_str("API_TOKEN_RATE", "1200/min"),
        "user": env_str("API_USER_RATE", "600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parity API",
    "DESCRIPTION": "Import model outputs and judgments, pull preference data and per-language reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ItemStatusEnum": "annotation.models.ItemStatus",
        "TaskTypeEnum": "annotation.models.TaskType",
        "TokenScopeEnum": "annotation.models.TokenScope",
    },
    # The export lines' schemas as components (a JSON Lines body references none by itself).
    "POSTPROCESSING_HOOKS": [
        "annotation.api.openapi.line_components",
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
}

# Celery: with a broker configured, background work (active-learning rounds, committee
# retraining, large exports) runs on a worker; without one it runs inline, the same
# plain function either way.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "") or ""
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A request never waits on a broker that is down: a bounded connect, no publish retries
# (the caller records the work as pending and the sweep sends it later; see
# annotation.background). Workers still retry their own connection for ever.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 2)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 2),
    "socket_timeout": 5,
    "max_retries": 0,
    # A message a worker took but never acknowledged goes back to the queue after this long.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
# At least once: a message is acknowledged after its task ran, and handed to another
# worker when the one running it dies; the tasks are idempotent for that.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# `celery -A parity beat` (compose) sends the sweep; cron can run `manage.py
# background_sweep` instead. It re-sends what a down broker left pending.
PARITY_SWEEP_SECONDS = env_int("PARITY_SWEEP_SECONDS", 60)
# A round left running this long without finishing is taken over by the next sweep.
PARITY_ROUND_STALE_SECONDS = env_int("PARITY_ROUND_STALE_SECONDS", 3600)
CELERY_BEAT_SCHEDULE = {
    "background-sweep": {
        "task": "active_learning.background_sweep",
        "schedule": PARITY_SWEEP_SECONDS,
    },
}

# Local models for active learning; never downloaded at run time.
PARITY_ENCODER_PATH = env_str("PARITY_ENCODER_PATH", "") or ""
PARITY_CAUSAL_LM_PATH = env_str("PARITY_CAUSAL_LM_PATH", "") or ""
# Items per scoring chunk when workers score a round's pool as a chord (a broker and a
# result backend configured): small enough to spread over the workers, large enough that
# per-task overhead stays small.
PARITY_AL_SCORE_CHUNK = env_int("PARITY_AL_SCORE_CHUNK", 50_000)

# Where the demo and the simulation find the bundled real data.
PARITY_DATA_DIR = Path(env_str("PARITY_DATA_DIR", str(BASE_DIR / "data")))

# Cache: with CACHE_URL=redis://… sessions are read from Redis (written through to the
# database), which saves a database round trip on every page an evaluator loads. Without
# it, a per-process memory cache and plain database sessions.
_cache_url = env_str("CACHE_URL", "") or ""
if _cache_url:
    if not _cache_url.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"CACHE_URL must be a redis:// URL, not {_cache_url.split(':', 1)[0]!r}."
        )
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            # A cache that is down answers within seconds (readyz names it), never hangs a worker.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
elif DEBUG:
    # Development: one process, a per-process memory cache is enough.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SESSION_ENGINE = "parity.sessions"  # Django's database sessions, read without the ORM
else:
    # Production without Redis: the API rate limits must hold across every gunicorn worker,
    # so their counters live in the database (`manage.py createcachetable`, which the compose
    # migrate service, `demo` and the test database run), never in one process's memory.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "parity_cache",
        }
    }
    SESSION_ENGINE = "parity.sessions"

# /metrics (Prometheus): a scraper sends `Authorization: Bearer $METRICS_TOKEN`, or scrapes
# from an address in METRICS_ALLOWED_IPS (addresses or networks, e.g. 10.0.0.0/8).
METRICS_TOKEN = env_str("METRICS_TOKEN", "") or ""
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])

# Logs: one JSON object per line (LOG_FORMAT=json, the default without DEBUG) with the
# request id of the request that wrote it; LOG_FORMAT=text for a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "annotation.request_id.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
