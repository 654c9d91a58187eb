"""Fixtures for the whole suite: the real database, the real broker and a real Celery worker."""

from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ops.testing import ServiceProcess, Workers, start_worker, start_workers

# SeaweedFS for the S3 tests: the `seaweedfs` and `s3_media` fixtures.
pytest_plugins = ["ops.testing_storage"]


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The suite's broker; emptied first so no message from an earlier run is delivered."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    return settings.CELERY_BROKER_URL


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, broker_url):
    """One real prefork worker on every project queue, pointed at the test database (quick to
    start); TEST_WORKERS=split runs the suite on the production layout instead: the generation
    worker and the system worker (ops.testing.start_workers). Either has .log() and .stop()."""
    worker: ServiceProcess | Workers
    with django_db_blocker.unblock():
        if os.environ.get("TEST_WORKERS") == "split":
            worker = start_workers(broker_url)
        else:
            worker = start_worker(broker_url)
    yield worker
    worker.stop()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="a-long-password-1")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="a-long-password-2")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
