"""Fixtures for the whole suite: the real database, the real broker and a real Celery worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ops.testing import (
    ServiceProcess,
    Workers,
    amqp_test_url,
    amqp_url_problem,
    broker_of,
    purge_project_queues,
    rabbitmq_vhost,
    redis_beside,
    start_worker,
    start_workers,
)

# SeaweedFS for the S3 tests: the `seaweedfs` and `s3_media` fixtures.
pytest_plugins = ["ops.testing_storage"]


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The suite's broker; emptied first so no message from an earlier run is delivered."""
    if settings.CELERY_BROKER_URL.startswith("redis"):
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    else:  # the whole suite on RabbitMQ (CACHE_URL and EVENTS_REDIS_URL name the Redis)
        purge_project_queues(settings.CELERY_BROKER_URL)
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


# Both brokers: tests that take `broker` and are parametrised with
#   @pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)
# run once on the suite's Redis and once on RabbitMQ, each with a real worker on it.


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A vhost of the session's own on RabbitMQ at TEST_AMQP_URL (default: this machine's, as on
    CI). Without RabbitMQ the AMQP tests skip, unless TEST_AMQP_URL names one: then they fail."""
    base = amqp_test_url()
    problem = amqp_url_problem(base)
    if problem:
        message = f"RabbitMQ does not answer at {base} ({problem}): the AMQP path is untested"
        if os.environ.get("TEST_AMQP_URL"):
            pytest.fail(message)
        pytest.skip(message)
    with rabbitmq_vhost(base, "mediaruns-test") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_worker(django_db_setup, django_db_blocker, amqp_url) -> Iterator[ServiceProcess]:
    """A real worker on every project queue of the session's RabbitMQ vhost. RabbitMQ carries
    only the messages: the cache and the live events stay on the suite's Redis, named
    explicitly, as a deployment on RabbitMQ must."""
    with django_db_blocker.unblock():
        worker = start_worker(amqp_url, **redis_beside(amqp_url))
    yield worker
    worker.stop()


@dataclass(frozen=True)
class BrokerUnderTest:
    kind: str  # "redis" or "amqp"
    url: str
    worker: ServiceProcess | Workers

    def start_worker(self, **options) -> ServiceProcess:
        """Another worker on this broker, with the suite's cache and events Redis."""
        return start_worker(self.url, **options, **redis_beside(self.url))


RECEIVED = "] received"  # a worker's log line for each message it takes


@pytest.fixture
def broker(request) -> Iterator[BrokerUnderTest]:
    """The broker a test runs on (`redis` unless parametrised) and the worker on it. On `amqp`
    this process's Celery app publishes to RabbitMQ for the test (ops.testing.broker_of), and the
    test fails if the RabbitMQ worker took no message during it: the path was really taken."""
    kind = getattr(request, "param", "redis")
    if kind == "redis":
        yield BrokerUnderTest(
            kind, settings.CELERY_BROKER_URL, request.getfixturevalue("celery_worker")
        )
        return
    url, worker = request.getfixturevalue("amqp_url"), request.getfixturevalue("amqp_worker")
    taken = worker.log().count(RECEIVED)
    with broker_of(url):
        yield BrokerUnderTest(kind, url, worker)
    if worker.log().count(RECEIVED) == taken:
        pytest.fail("no message reached the RabbitMQ worker during the test")


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
