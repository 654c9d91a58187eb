"""Maintenance is never behind generation work (issue 10, point 1): with a backlog of a few hundred
queued runs, `runs.scan` sent through the broker completes while most of the backlog still waits.

Real processes: a broker of the test's own (a Redis on a free port; RabbitMQ in a vhost of the
test's own), the project's workers started as `run_celery.py` starts them, the test database.
Waits are bounded; nothing here asserts a duration.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import current_app
from celery.exceptions import TimeoutError as CeleryTimeout

from ops.commandline import GENERATION_WORKER, SYSTEM_QUEUE, SYSTEM_WORKER, generation_queues
from ops.testing import (
    RedisServer,
    ServiceProcess,
    Workers,
    amqp_test_url,
    broker_of,
    rabbitmq_vhost,
    redis_beside,
    start_worker,
    start_workers,
)
from runs import lifecycle
from runs import tasks as maintenance_tasks
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db(transaction=True)

BACKLOG = 300  # runs of the test kind, each sleeping SECONDS: a minute of work for one process
SECONDS = 0.2
SCAN_TIMEOUT = 60  # seconds the scan may take to come back; the backlog alone takes far longer


def queue_backlog(owner) -> list[SleepRun]:
    """BACKLOG runs queued through the lifecycle's own dispatch, at normal priority."""
    runs = SleepRun.objects.bulk_create(
        SleepRun(owner=owner, steps=1, seconds_per_step=SECONDS) for _ in range(BACKLOG)
    )
    assert all(lifecycle.dispatch(run) for run in runs)
    return runs


def still_queued() -> int:
    return SleepRun.objects.filter(status=RunStatus.QUEUED).count()


def scan_through_the_broker(workers: Workers | ServiceProcess) -> dict:
    """Send `runs.scan` as beat does (its route: the `system` queue at the top priority) and
    wait for its result in django-celery-results."""
    result = current_app.send_task("runs.scan")
    try:
        outcome = result.get(timeout=SCAN_TIMEOUT)
    except CeleryTimeout:
        raise AssertionError(
            f"runs.scan did not complete within {SCAN_TIMEOUT} s behind the backlog "
            f"({still_queued()} runs still queued); worker output:\n{workers.log()[-4000:]}"
        ) from None
    assert isinstance(outcome, dict) and "dispatched" in outcome, outcome
    return outcome


@pytest.fixture
def redis_broker() -> Iterator[str]:
    broker = RedisServer().start()
    with broker_of(broker.url):
        yield broker.url
    broker.stop()


@pytest.fixture
def rabbitmq_broker(amqp_url) -> Iterator[str]:
    """A vhost of the test's own (the session's, conftest.py, has a worker of its own that would
    take the backlog); requesting the session's skips or fails the test as it does."""
    with rabbitmq_vhost(amqp_test_url(), "mediaruns-backlog") as url, broker_of(url):
        yield url


@pytest.mark.parametrize("broker", ["redis_broker", "rabbitmq_broker"])
def test_maintenance_completes_with_a_backlog_of_a_few_hundred_runs(broker, request, user):
    url = request.getfixturevalue(broker)
    queue_backlog(user)
    workers = start_workers(url, concurrency=1, **redis_beside(url))
    try:
        assert sorted(workers.nodes) == [GENERATION_WORKER, SYSTEM_WORKER]

        scan_through_the_broker(workers)  # at the route's priority, in this broker's order

        # Most of the backlog still waits: the scan went past it, not after it.
        assert still_queued() >= BACKLOG // 2
        assert "Task runs.scan[" in workers.system.log()
        assert "Task runs.scan[" not in workers.generation.log()
    finally:
        workers.stop()


def test_a_single_worker_on_every_queue_takes_maintenance_first_on_redis(redis_broker, user):
    """The route's priority alone (Redis 0, ahead of the runs' 4): kombu serves every queue a
    worker consumes priority-major, so even one all-queue worker takes the scan next."""
    queue_backlog(user)
    worker = start_worker(redis_broker, concurrency=1)
    try:
        scan_through_the_broker(worker)

        assert still_queued() >= BACKLOG // 2
    finally:
        worker.stop()


def test_the_layout_gives_system_a_consumer_of_its_own():
    from ops.commandline import worker_layout

    generation, system = worker_layout(concurrency=3)
    assert (generation.name, generation.concurrency) == (GENERATION_WORKER, 3)
    assert generation.queues == tuple(generation_queues()) and SYSTEM_QUEUE not in generation.queues
    assert (system.name, system.queues, system.pool) == (SYSTEM_WORKER, (SYSTEM_QUEUE,), "prefork")
    assert generation.prefix != system.prefix  # two node names on one machine

    # An explicit queue list is one node on exactly those queues, the system queue included.
    (only,) = worker_layout(concurrency=2, queues=["system", "video"])
    assert (only.name, only.queues) == (GENERATION_WORKER, ("system", "video"))


def test_maintenance_is_published_at_the_top_priority_and_runs_below_it(redis_broker, user):
    """On Redis every priority level is a list of its own ("system" holds level 0, "celery:4"
    level 4): beat's way of sending (task.apply_async) lands in the top one, a run below it."""
    maintenance_tasks.scan.apply_async()  # as beat sends a schedule that names no priority
    run = SleepRun.objects.create(owner=user)
    assert lifecycle.dispatch(run)

    client = redis.Redis.from_url(redis_broker)
    levels = {
        key.decode(): client.llen(key) for key in client.keys("*") if client.type(key) == b"list"
    }
    assert levels == {"system": 1, "celery:4": 1}
