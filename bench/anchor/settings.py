"""Settings of the anchor: the same database (DATABASE_URL) and broker (CELERY_BROKER_URL) as the
project's side of the bench, nothing else."""

import environ

env = environ.Env()
SECRET_KEY = "bench-anchor-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# What `django-admin startproject` gives (the seeds' projects kept it), plus the one app.
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "anchor",
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
ROOT_URLCONF = "anchor.urls"
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = 60
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
