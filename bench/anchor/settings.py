"""Settings of the anchor: the same database (DATABASE_URL) and broker (CELERY_BROKER_URL) as the
project's side of the bench, nothing else."""

import environ

env = environ.Env()
SECRET_KEY = "bench-anchor-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["anchor"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "anchor.urls"
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
