"""The single implementations the health endpoint, the metrics, run_celery.py, devserver and the
test helpers share: the queue list, the worker command line and the checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.core.management import get_commands
from django.utils import timezone
from kombu import Queue

from ops.checks import beat_stale_after, beat_state, broker_error, runs_by_status
from ops.commandline import beat_command, project_queues, worker_command
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun
from schedules.beat import LEASE_NAME
from schedules.models import BeatLease


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_queue_list_is_the_settings_queues_and_covers_every_route(settings):
    assert project_queues() == [queue.name for queue in settings.CELERY_TASK_QUEUES]
    routed = {route["queue"] for route in settings.TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= set(project_queues())


def test_the_worker_command_line_follows_the_settings_queues(settings):
    default = worker_command(concurrency=2)
    assert default[1:6] == ["-m", "celery", "-A", "web", "worker"]
    assert option(default, "--queues") == ",".join(project_queues())
    assert option(default, "--pool") == "prefork" and option(default, "--concurrency") == "2"

    settings.CELERY_TASK_QUEUES = [Queue("system"), Queue("video")]
    assert option(worker_command(concurrency=1), "--queues") == "system,video"
    assert option(worker_command(concurrency=1, queues=["video"]), "--queues") == "video"


def test_beat_starts_with_the_settings_scheduler(settings):
    assert option(beat_command(), "--scheduler") == settings.CELERY_BEAT_SCHEDULER


def test_devserver_is_an_ops_command():
    assert get_commands()["devserver"] == "ops"


@pytest.mark.django_db
def test_beat_is_ok_while_it_ticks_then_stale_after_three_missed_loops():
    assert beat_state().status == "never" and beat_state().as_json()["last_tick"] is None
    now = timezone.now()
    lease = BeatLease.objects.create(
        name=LEASE_NAME, holder="host:1:x", acquired_at=now, expires_at=now, ticked_at=now
    )
    ticking = beat_state()
    assert ticking.status == "ok" and ticking.age_seconds is not None
    assert ticking.as_json()["last_tick"] == now.isoformat()

    lease.ticked_at = now - timedelta(seconds=beat_stale_after() + 1)
    lease.save()
    assert beat_state().status == "stale"


@pytest.mark.django_db
def test_runs_by_status_counts_every_kind(user):
    SleepRun.objects.create(owner=user)
    SleepRun.objects.create(owner=user)
    SleepRun.objects.create(owner=user, status=RunStatus.FAILED)
    counts = runs_by_status()
    assert counts["sleeper.sleeprun"] == {"pending": 2, "failed": 1}
    assert "podcast.podcastrun" in counts and "video.videorun" in counts


def test_a_broker_that_does_not_answer_is_a_reason_not_an_exception(monkeypatch):
    monkeypatch.setitem(current_app.conf, "broker_write_url", "redis://127.0.0.1:1/0")
    problem = broker_error(timeout=1)
    assert problem and "\n" not in problem and not problem.endswith(".")
