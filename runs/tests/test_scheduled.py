"""Runs at a time: `run_at` / `delay_seconds` keep a run `scheduled` until the scan queues it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from ops.testing import RedisServer
from runs import maintenance
from runs.models import RunStatus
from runs.tests.helpers import start_worker, wait_for
from runs.tests.sleeper.models import SleepRun
from schedules.seeding import sync_schedules
from schedules.tests.helpers import start_beat

pytestmark = [pytest.mark.django_db(transaction=True)]

RUNS = "/api/test/sleep-runs/"


def finished(run_id, timeout: float = 60):
    return wait_for(
        lambda: SleepRun.objects.filter(pk=run_id, status__in=["succeeded", "failed"]).first(),
        timeout=timeout,
        what="the run to finish",
    )


@pytest.mark.usefixtures("celery_worker")
def test_a_run_at_ahead_waits_scheduled_and_the_scan_starts_it_when_due(api):
    run_at = (timezone.now() + timedelta(seconds=20)).astimezone(timezone.get_fixed_timezone(480))
    reply = api.post(RUNS, {"steps": 1, "run_at": run_at.isoformat()}, format="json")

    assert reply.status_code == 202
    assert reply.json()["status"] == "scheduled"
    run_id = reply.json()["id"]
    detail = api.get(f"{RUNS}{run_id}/").json()
    assert detail["status"] == "scheduled" and detail["queued_at"] is None
    assert maintenance.scan()["scheduled"] == 0  # not yet due

    def scan_dispatches() -> bool:
        return maintenance.scan()["scheduled"] == 1

    wait_for(scan_dispatches, timeout=60, interval=1, what="the scan to dispatch the run")
    run = finished(run_id)
    assert run.status == "succeeded"
    assert run.queued_at >= run.run_at  # never before its time
    assert abs(run.run_at - run_at) < timedelta(milliseconds=1)


@pytest.mark.usefixtures("celery_worker")
def test_delay_seconds_and_past_times(api):
    delayed = api.post(RUNS, {"steps": 1, "delay_seconds": 3600}, format="json").json()
    assert delayed["status"] == "scheduled"
    run = SleepRun.objects.get(pk=delayed["id"])
    assert timedelta(minutes=59) < run.run_at - timezone.now() <= timedelta(hours=1)

    past = api.post(RUNS, {"steps": 1, "run_at": "2020-01-01T00:00:00Z"}, format="json").json()
    assert past["status"] in ("pending", "queued", "running", "succeeded")  # runs now
    assert finished(past["id"]).status == "succeeded"
    now = api.post(RUNS, {"steps": 1, "delay_seconds": 0}, format="json").json()
    assert finished(now["id"]).status == "succeeded"


def test_a_scheduled_run_can_be_cancelled_before_it_starts(api):
    run_id = api.post(RUNS, {"steps": 1, "delay_seconds": 60}, format="json").json()["id"]

    reply = api.post(f"{RUNS}{run_id}/cancel/")

    assert reply.status_code == 202 and reply.json()["status"] == "cancelled"
    later = timezone.now() + timedelta(minutes=5)
    assert maintenance.dispatch_scheduled(later) == 0
    run = SleepRun.objects.get(pk=run_id)
    assert run.status == "cancelled" and run.queued_at is None and run.finished_at


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"run_at": "2020-01-01T00:00:00Z", "delay_seconds": 5}, {"run_at", "delay_seconds"}),
        ({"run_at": "2030-01-01T08:00:00"}, {"run_at"}),  # no offset: whose 08:00?
        ({"run_at": "tomorrow"}, {"run_at"}),
        ({"run_at": "2030-02-30T08:00:00Z"}, {"run_at"}),
        ({"run_at": 1767225600}, {"run_at"}),
        ({"run_at": "0999-01-01T00:00:00Z"}, {"run_at"}),
        ({"delay_seconds": -1}, {"delay_seconds"}),
        ({"delay_seconds": 30 * 86400 + 1}, {"delay_seconds"}),
        ({"delay_seconds": "10"}, {"delay_seconds"}),
        ({"delay_seconds": 1.5}, {"delay_seconds"}),
        ({"delay_seconds": True}, {"delay_seconds"}),
        ({"steps": "x", "delay_seconds": -1}, {"steps", "delay_seconds"}),
    ],
)
def test_bad_times_answer_400_naming_the_field(api, body, fields):
    reply = api.post(RUNS, {"steps": 1, **body}, format="json")
    assert reply.status_code == 400
    assert set(reply.json()) == fields
    assert SleepRun.objects.count() == 0


def test_more_than_30_days_ahead_is_refused(api):
    far = (timezone.now() + timedelta(days=31)).isoformat()
    reply = api.post(RUNS, {"steps": 1, "run_at": far}, format="json")
    assert reply.status_code == 400
    assert "30 days" in reply.json()["run_at"][0]


def test_scheduled_runs_count_towards_the_active_run_cap(api, settings):
    settings.RUN_ACTIVE_LIMIT_PER_USER = 1
    assert api.post(RUNS, {"steps": 1, "delay_seconds": 600}, format="json").status_code == 202
    assert api.post(RUNS, {"steps": 1, "delay_seconds": 600}, format="json").status_code == 429


def test_a_scheduled_run_starts_by_a_real_beat_after_worker_and_beat_restarts(api):
    """Nothing but the row remembers the run: the worker and the beat that were up when it was
    booked are stopped and started again (it may even fall due while both are down), and the
    seeded scan schedule still starts it."""
    own = RedisServer().start()  # worker and beat of the test's own; this process sends nothing
    processes = []
    try:
        sync_schedules()  # the seeded "scan async runs", every 15 s
        worker, beat = start_worker(own.url), start_beat(own.url, "beat-first")
        processes += [worker, beat]
        run_id = api.post(RUNS, {"steps": 1, "delay_seconds": 20}, format="json").json()["id"]
        assert SleepRun.objects.get(pk=run_id).status == RunStatus.SCHEDULED
        worker.stop()
        beat.stop()

        worker, beat = start_worker(own.url), start_beat(own.url, "beat-again")
        processes += [worker, beat]
        run = finished(run_id, timeout=120)

        assert run.status == "succeeded"
        assert run.queued_at >= run.run_at
        fired = TaskResult.objects.filter(task_name="runs.scan", status="SUCCESS")
        assert any('"scheduled": 1' in (row.result or "") for row in fired)
    finally:
        for process in processes:
            process.stop()
        own.stop()
