"""Settings for the whole project, read from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")
    return raw in ("true", "1", "yes", "on")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default="").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.str(name, default="").strip()
    if raw == "":
        return default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def env_seconds(name: str, default: float) -> float:
    raw = env.str(name, default="").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:  # also refuses nan
        raise ImproperlyConfigured(f"{name} must be more than 0 seconds, not {raw!r}")
    return value


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "runs",
    "schedules",
    "ops",
    "podcast",
    "video",
    # Apps that exist only for tests and benchmarks (runs.tests.sleeper), never in production.
    *env.list("EXTRA_APPS", default=[]),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "web.urls"
WSGI_APPLICATION = "web.wsgi.application"

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
            ],
        },
    },
]

# Database
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.mysql":
    # Workers live for days: reuse a connection for a while, but check it before each use so a
    # connection the server dropped (wait_timeout) is replaced instead of failing a task.
    _db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # READ COMMITTED: pollers see other transactions' commits, and SKIP LOCKED claims
            # lock only the rows they return.
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
    )
    _db.setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for the writer instead of failing at once.
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # A file, not :memory:, so a worker subprocess sees the test database too.
    _db.setdefault("TEST", {})["NAME"] = str(BASE_DIR / "db-test.sqlite3")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Media is never served from a public path: views stream each file to its owner.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
LOG_DIR = Path(env.str("LOG_DIR", default=str(BASE_DIR / "logs")))
# Operations (ops/): the bearer token a Prometheus scraper sends to /api/metrics (none: staff
# only), and Flower's basic auth for `run_celery.py monitor` (user:password, required there;
# Flower reads the variable from the environment itself, so the password stays out of `ps`).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default="")

# Security (production: DEBUG off behind TLS)
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"  # nothing here is meant to be framed

# REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Media runs API",
    "DESCRIPTION": "Submit podcast and video generation runs, poll them, cancel and retry.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs page works with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for the run status choices that every run kind's serializer shares.
    "ENUM_NAME_OVERRIDES": {"RunStatusEnum": "runs.models.RunStatus"},
}

# Runs
RUN_HEARTBEAT_SECONDS = env_int("RUN_HEARTBEAT_SECONDS", 10, minimum=1)
# A running run whose heartbeat is older than this is presumed dead (its worker was killed).
RUN_STALE_AFTER_SECONDS = env_int("RUN_STALE_AFTER_SECONDS", 3 * RUN_HEARTBEAT_SECONDS, minimum=1)
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 3, minimum=1)
# How long the part of a canvas that just ended keeps its run's heartbeat fresh while the next
# part waits in the queue behind other work (seconds); past it, the timeout check may step in.
RUN_PART_GAP_SECONDS = env_int("RUN_PART_GAP_SECONDS", 30 * 60, minimum=1)
# Finished runs, their results and artifact files older than this are removed by runs.cleanup.
RUN_RETENTION_DAYS = env_int("RUN_RETENTION_DAYS", 30, minimum=1)

# Generation engines (engines/ reads no environment: the steps pass these in as an EngineConfig).
# Per capability, "local" (offline: sentence scoring, eSpeak NG, Pillow) or "openai" (an
# OpenAI-compatible provider at AI_BASE_URL).
TEXT_ENGINE = env_choice("TEXT_ENGINE", "local", ("local", "openai"))
SPEECH_ENGINE = env_choice("SPEECH_ENGINE", "local", ("local", "openai"))
IMAGE_ENGINE = env_choice("IMAGE_ENGINE", "local", ("local", "openai"))
# A failed remote call is retried once with the local engine, with a warning in the log.
ENGINE_FALLBACK = env_bool("ENGINE_FALLBACK", False)
# A TrueType/OpenType font for captions and subtitles (e.g. a CJK font); empty: the built-in ones.
ENGINE_FONT_PATH = env.str("ENGINE_FONT_PATH", default="")
AI_BASE_URL = env.str("AI_BASE_URL", default="") or "https://api.openai.com/v1"
AI_API_KEY = env.str("AI_API_KEY", default="")  # sent as a Bearer token when set
AI_CHAT_MODEL = env.str("AI_CHAT_MODEL", default="") or "gpt-4o-mini"
AI_TTS_MODEL = env.str("AI_TTS_MODEL", default="") or "tts-1"
AI_IMAGE_MODEL = env.str("AI_IMAGE_MODEL", default="") or "dall-e-3"
# Past this, a provider call counts as a transient failure (retried with backoff).
AI_TIMEOUT_SECONDS = env_seconds("AI_TIMEOUT_SECONDS", 60.0)
# A remote video renderer (docs/api.md, "Remote video provider") and its bearer token; empty:
# the compose part renders locally with ffmpeg.
VIDEO_PROVIDER_URL = env.str("VIDEO_PROVIDER_URL", default="").rstrip("/")
VIDEO_PROVIDER_KEY = env.str("VIDEO_PROVIDER_KEY", default="")

# Celery
# Soft limit raises SoftTimeLimitExceeded inside the task (the run ends timed_out and cleans up);
# the hard limit kills the child a minute later if the task ignores it. Seconds.
TASK_TIME_LIMITS = {
    "system": (2 * 60, 3 * 60),  # maintenance must never hold a worker for long
    "podcast": (20 * 60, 21 * 60),  # a long episode is several minutes of synthesis and encoding
    "video": (30 * 60, 31 * 60),  # a render can take ten minutes or more
    "celery": (10 * 60, 11 * 60),
}
LONGEST_HARD_LIMIT = max(hard for _, hard in TASK_TIME_LIMITS.values())

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_ACCEPT_CONTENT = ["json"]  # never unpickle what arrives on the wire
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# At-least-once: a message is acknowledged after the task ends, and a killed child's message goes
# back to the queue; the run lifecycle makes the second delivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a process holds one long task, not a backlog behind it
CELERY_TASK_SOFT_TIME_LIMIT = TASK_TIME_LIMITS["celery"][0]
CELERY_TASK_TIME_LIMIT = TASK_TIME_LIMITS["celery"][1]
# Redis redelivers an unacknowledged message after visibility_timeout; it must outlast the longest
# task, or a render still in progress would be handed to a second worker. Celery's docs ask for it
# in the broker, the result backend and (for ETA tasks) the same value everywhere. Seconds.
_visibility_timeout = LONGEST_HARD_LIMIT + 30 * 60
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility_timeout,
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
    # Fail a publish fast when the broker is down: the run stays pending for the scan to send.
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility_timeout}
CELERY_BROKER_CONNECTION_TIMEOUT = 3  # seconds; a down broker answers quickly, a dead host won't
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True  # a worker waits for the broker instead of dying
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A long task that loses the broker connection cannot be acknowledged any more: stop it, because
# the broker will redeliver its message anyway.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name, queue_arguments={"x-max-priority": 10})
    for name in TASK_TIME_LIMITS
]
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "runs.*": {"queue": "system"},
    "podcast.*": {"queue": "podcast"},
    "video.*": {"queue": "video"},
}
CELERY_TASK_QUEUE_MAX_PRIORITY = 10
CELERY_TASK_DEFAULT_PRIORITY = 5
# Generation tasks keep no Celery result (the run row holds it); maintenance tasks opt in.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True  # task name, args and worker in the admin's result list
CELERY_RESULT_EXPIRES = 7 * 24 * 3600  # seconds; the cleanup schedule prunes older rows
CELERY_WORKER_SEND_TASK_EVENTS = True  # for Flower
CELERY_TASK_SEND_SENT_EVENT = True
# The DatabaseScheduler behind a leader lease: with two beats running, only the leader fires.
CELERY_BEAT_SCHEDULER = "schedules.beat:LeaderScheduler"
# Seconds a beat's lease lasts unrenewed: a killed leader is replaced within this plus one tick.
BEAT_LEASE_SECONDS = env_int("BEAT_LEASE_SECONDS", 15, minimum=3)
# Beat re-reads its schedule this often at most (seconds): an admin edit takes effect this fast.
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Keep a worker's database connection across tasks (Celery closes it around every task by
# default, costing a new MySQL connection per run); CONN_MAX_AGE and health checks still apply.
CELERY_DB_REUSE_MAX = 1000

# Logging: to stderr; the scripts redirect worker and beat output to files under LOG_DIR.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
