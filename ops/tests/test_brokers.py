"""Redis and RabbitMQ for the operator: `run_celery.py status` and `purge` as an operator runs
them, the health report, the message priorities and the settings, on each broker.

Real brokers of the test's own: a Redis on a free port, a RabbitMQ vhost made for the test
(conftest.py's `amqp_url` skips or fails these without RabbitMQ, as it says). What the broker
holds is read from the broker itself, never from the code under test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from celery import current_app
from django.conf import settings
from rest_framework.authtoken.models import Token

from ops.health import check_health, health_cache
from ops.testing import (
    PYTHON,
    ROOT,
    RedisServer,
    amqp_test_url,
    amqp_waiting,
    broker_of,
    free_port,
    rabbitmq_vhost,
    redis_beside,
    service_env,
    start_web,
    start_worker,
    wait_for,
)
from runs.models import Priority, RunStatus
from runs.outbox import message_priority
from runs.routing import route_task
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db(transaction=True)

BOTH = pytest.mark.parametrize("own_broker", ["redis", "amqp"], indirect=True)


@pytest.fixture
def own_broker(request) -> Iterator[str]:
    """A broker no other test uses: purging it or stopping its worker touches nothing else."""
    if request.param == "redis":
        server = RedisServer().start()
        try:
            yield server.url
        finally:
            server.stop()
        return
    request.getfixturevalue("amqp_url")  # RabbitMQ answers, or the test skips (or fails)
    with rabbitmq_vhost(amqp_test_url(), "mediaruns-ops") as url:
        yield url


def waiting(url: str, queue: str) -> int:
    """Messages in a queue, as the broker itself counts them."""
    if url.startswith("amqp"):
        return amqp_waiting(url, queue)
    client = redis.Redis.from_url(url)
    keys = [queue, *(f"{queue}:{level}" for level in range(10))]
    return sum(client.llen(key) for key in keys if client.type(key) == b"list")


def run_celery(url: str, log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = service_env(CELERY_BROKER_URL=url, LOG_DIR=str(log_dir), **redis_beside(url))
    return subprocess.run(
        [PYTHON, str(ROOT / "run_celery.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def field(output: str, label: str) -> str:
    for line in output.splitlines():
        head, _, rest = line.partition(" ")
        if head == label:
            return rest.strip()
    raise AssertionError(f"no {label!r} line in:\n{output}")


def publish(queue: str, count: int) -> None:
    for _ in range(count):
        current_app.send_task("nothing.consumes.this", queue=queue)


@BOTH
def test_status_purge_and_health_through_the_scripts(own_broker, tmp_path):
    with broker_of(own_broker):
        publish("video", 3)
        publish("podcast", 1)
    assert (waiting(own_broker, "video"), waiting(own_broker, "podcast")) == (3, 1)

    status = run_celery(own_broker, tmp_path, "status")
    assert status.returncode == 2, status.stdout + status.stderr  # no worker, no beat: down
    lengths = field(status.stdout, "queues")
    assert "video 3" in lengths and "podcast 1" in lengths and "system 0" in lengths

    purged = run_celery(own_broker, tmp_path, "purge", "--yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "Purged 4 message(s)" in purged.stdout
    assert (waiting(own_broker, "video"), waiting(own_broker, "podcast")) == (0, 0)

    worker = start_worker(own_broker, concurrency=1, **redis_beside(own_broker))
    try:
        status = run_celery(own_broker, tmp_path, "status")
        assert status.returncode == 1, status.stdout  # degraded: beat is not running
        assert field(status.stdout, "ping").endswith("answered"), status.stdout
        with broker_of(own_broker):
            health_cache.clear()
            report = check_health()
        assert (report["broker"], report["workers"]) == ("ok", 1), report
    finally:
        worker.stop()


def test_a_rabbitmq_that_is_down_is_one_sentence_and_unhealthy(tmp_path):
    """(Redis down: ops/tests/test_scripts.py.)"""
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"

    purged = run_celery(down, tmp_path, "purge", "--yes")
    assert purged.returncode != 0 and "Traceback" not in purged.stderr, purged.stderr
    assert "cannot be reached" in purged.stderr and "start RabbitMQ first" in purged.stderr
    status = run_celery(down, tmp_path, "status")
    assert status.returncode == 2 and field(status.stdout, "broker").startswith("unreachable")
    with broker_of(down):
        health_cache.clear()
        report = check_health()
    assert (report["status"], report["broker"]) == ("unhealthy", "unreachable")


@BOTH
def test_a_higher_priority_run_is_taken_first_on_either_broker(own_broker):
    """The queues are declared with ten priority levels (RabbitMQ: x-max-priority), and a run's
    priority is sent in the broker's own order: the broker hands out high, normal, low."""
    sent = {}
    with broker_of(own_broker):
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH):
            result = current_app.send_task(
                "nothing.consumes.this", queue="video", priority=message_priority(priority)
            )
            sent[result.id] = priority
        with current_app.connection_for_read() as conn:  # on Redis: the app's list names
            channel = conn.default_channel
            taken = [channel.basic_get("video", no_ack=True) for _ in sent]
    order = [sent[message.headers["id"]] for message in taken]
    assert order == [Priority.HIGH, Priority.NORMAL, Priority.LOW]


def test_routes_carry_the_priority_in_the_order_of_the_broker_sent_to():
    """Redis serves 0 first, RabbitMQ 9 first; one process may send to either."""
    for url, top, normal in (("redis://127.0.0.1:1/0", 0, 4), ("amqp://g:g@127.0.0.1:1/", 9, 5)):
        with broker_of(url):
            assert route_task("runs.scan", (), {}, {}) == {"queue": "system", "priority": top}
            assert route_task("video.compose", (), {}, {})["priority"] == normal
            assert route_task("sleeper.generate", (), {}, {})["queue"] == "celery"
            assert message_priority(Priority.HIGH) == top
            assert message_priority(Priority.NORMAL) == normal
            # A sender's own priority (a schedule's, set in the admin) wins over the route's.
            routed = current_app.amqp.router.route({"priority": 3}, "runs.scan")
            assert routed["priority"] == 3


def settings_check(**env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "DATABASE_URL": "sqlite:////tmp/b.sqlite3"}
    return subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_rabbitmq_broker_needs_redis_named_for_the_cache_and_the_events():
    amqp = "amqp://guest:secret@127.0.0.1:5672/"
    cases = {
        (("CELERY_BROKER_URL", "sqs://key:secret@queue"),): "CELERY_BROKER_URL must be a Redis",
        (("CELERY_BROKER_URL", amqp),): "CACHE_URL must be set when CELERY_BROKER_URL is not",
        (("CELERY_BROKER_URL", amqp), ("CACHE_URL", "redis://127.0.0.1:6379/1")): (
            "EVENTS_REDIS_URL must be set when CELERY_BROKER_URL is not Redis (amqp://)"
        ),
    }
    for env, problem in cases.items():
        result = settings_check(**dict(env))
        assert result.returncode == 2, result.stdout + result.stderr
        (sentence,) = result.stderr.strip().splitlines()
        assert sentence.startswith("The settings are not usable: ") and problem in sentence
        assert "secret" not in sentence  # the URL's password is never printed

    named = settings_check(
        CELERY_BROKER_URL=amqp, CACHE_URL="redis://127.0.0.1:6379/1", EVENTS_REDIS_URL="off"
    )
    assert named.returncode == 0, named.stderr


def test_the_rabbitmq_snippet_lets_the_longest_task_hold_its_message():
    """RabbitMQ's consumer_timeout plays the part of Redis' visibility_timeout: as long."""
    lines = (ROOT / "deploy" / "rabbitmq" / "mediaruns.conf").read_text().splitlines()
    (value,) = [line.split("=")[1] for line in lines if line.startswith("consumer_timeout")]
    visibility_seconds = settings.REDIS_TRANSPORT_OPTIONS["visibility_timeout"]
    assert int(value) == visibility_seconds * 1000
    assert visibility_seconds > settings.LONGEST_HARD_LIMIT


def test_the_app_on_rabbitmq_takes_a_run_through_the_api_and_reports_healthy_parts(
    amqp_url, amqp_worker, user
):
    """A web server started for RabbitMQ (its settings read at start: routes, confirms), with
    the cache and the events on the Redis named beside it."""
    web, base = start_web(amqp_url, **redis_beside(amqp_url))
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    try:
        reply = httpx.post(f"{base}/api/test/sleep-runs/", json={"steps": 1}, headers=headers)
        assert reply.status_code == 202, reply.text
        run = SleepRun.objects.get(pk=reply.json()["id"])
        wait_for(
            lambda: SleepRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED,
            what="the run to succeed on the RabbitMQ worker",
        )
        run.refresh_from_db()
        assert f"Task {SleepRun.task_name}[{run.task_id}] received" in amqp_worker.log()

        health = httpx.get(f"{base}/api/health/", timeout=30).json()
        assert (health["broker"], health["database"]) == ("ok", "ok")
        assert health["workers"] >= 1  # the RabbitMQ worker answered the ping
    finally:
        web.stop()
