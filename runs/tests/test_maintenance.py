"""Maintenance tasks on the real database and broker, with a real worker and the sleeper kind."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from runs import lifecycle, maintenance
from runs import waiting as pollers
from runs.models import RunStatus
from runs.tests.helpers import both_brokers, in_threads, wait_for
from runs.tests.sleeper.models import SleepEffect, SleepResult, SleepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """A MEDIA_ROOT of this test's own: the orphan sweep must never touch other tests' files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def status_of(run) -> str:
    run.refresh_from_db()
    return run.status


def wait_status(run, *statuses, timeout=45):
    wait_for(lambda: status_of(run) in statuses, timeout=timeout, what=f"run to be {statuses}")


def dead_worker_run(user, *, attempt=1, max_attempts=3, idle_seconds=120) -> SleepRun:
    """A run left `running` by a worker that died: its heartbeat stopped `idle_seconds` ago."""
    then = timezone.now() - timedelta(seconds=idle_seconds)
    return SleepRun.objects.create(
        owner=user,
        status=RunStatus.RUNNING,
        attempt=attempt,
        max_attempts=max_attempts,
        task_id=str(uuid.uuid4()),
        queued_at=then,
        started_at=then,
        heartbeat_at=then,
    )


# Check timeouts


@both_brokers
def test_a_run_with_a_stale_heartbeat_is_dispatched_again_and_finishes(user, broker):
    run = dead_worker_run(user)

    outcome = maintenance.check_timeouts(stale_after_seconds=30, timeout_minutes=30)

    assert outcome == {"timed_out": 0, "redispatched": 1}
    wait_status(run, RunStatus.SUCCEEDED)
    assert run.attempt == 2  # the claim fenced off the dead attempt
    assert SleepEffect.objects.filter(run=run).count() == 1


def test_a_fresh_heartbeat_is_left_alone(user):
    run = dead_worker_run(user, idle_seconds=2)
    assert maintenance.check_timeouts(stale_after_seconds=30) == {"timed_out": 0, "redispatched": 0}
    assert status_of(run) == RunStatus.RUNNING


def test_a_stale_run_out_of_attempts_ends_timed_out(user):
    run = dead_worker_run(user, attempt=3, max_attempts=3)
    assert maintenance.check_timeouts(stale_after_seconds=30) == {"timed_out": 1, "redispatched": 0}
    assert status_of(run) == RunStatus.TIMED_OUT
    assert "lost on every attempt" in run.message


def test_a_run_past_its_timeout_ends_timed_out_and_its_task_is_killed(user):
    run = SleepRun.objects.create(owner=user, steps=200, seconds_per_step=0.25)
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.RUNNING)
    time.sleep(1.5)  # the run has now been running for longer than its timeout (1.2 s)

    outcome = maintenance.check_timeouts(stale_after_seconds=60, timeout_minutes=0.02)

    assert outcome["timed_out"] == 1
    assert status_of(run) == RunStatus.TIMED_OUT
    assert "running for over 0.02 min" in run.message
    revoked = current_app.control.inspect(timeout=2).revoked() or {}
    assert any(run.task_id in ids for ids in revoked.values())
    # The child was killed: its heartbeat stops, and the steps never finished.
    wait_for(lambda: worker_is_not_running(run.task_id), timeout=30, what="the task to be killed")
    progress = SleepRun.objects.get(pk=run.pk).progress
    time.sleep(1.5)
    assert SleepRun.objects.get(pk=run.pk).progress == progress
    assert not SleepResult.objects.filter(run=run).exists()


def worker_is_not_running(task_id: str) -> bool:
    active = current_app.control.inspect(timeout=1).active() or {}
    return not any(task["id"] == task_id for tasks in active.values() for task in tasks)


def test_two_timeout_checks_at_once_dispatch_a_stale_run_only_once(user):
    run = dead_worker_run(user)

    outcomes = in_threads(2, lambda: maintenance.check_timeouts(stale_after_seconds=30))

    assert sorted(o["redispatched"] for o in outcomes) == [0, 1]
    wait_status(run, RunStatus.SUCCEEDED)
    assert run.attempt == 2
    assert SleepEffect.objects.filter(run=run).count() == 1


@both_brokers
def test_the_task_through_the_worker_keeps_its_result_for_the_admin(user, broker):
    dead_worker_run(user)
    result = current_app.send_task("runs.check_timeouts", kwargs={"stale_after_seconds": 30})
    assert result.get(timeout=30) == {"timed_out": 0, "redispatched": 1}
    row = TaskResult.objects.get(task_id=result.id)
    assert row.status == "SUCCESS" and row.task_name == "runs.check_timeouts"


# Scan


@both_brokers
def test_the_scan_dispatches_old_pending_runs_and_leaves_fresh_ones(user, broker):
    old = SleepRun.objects.create(owner=user)
    SleepRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    fresh = SleepRun.objects.create(owner=user)

    outcome = maintenance.scan(pending_grace_seconds=60)

    assert outcome["dispatched"] == 1
    wait_status(old, RunStatus.SUCCEEDED)
    assert status_of(fresh) == RunStatus.PENDING


def test_the_scan_sends_again_a_queued_run_whose_message_was_lost(user):
    long_ago = timezone.now() - timedelta(hours=2)
    lost = SleepRun.objects.create(owner=user, status=RunStatus.QUEUED, task_id="lost-message")
    SleepRun.objects.filter(pk=lost.pk).update(created_at=long_ago, queued_at=long_ago)
    recent = SleepRun.objects.create(
        owner=user, status=RunStatus.QUEUED, task_id="in-line", queued_at=timezone.now()
    )

    outcomes = in_threads(2, lambda: maintenance.scan(requeue_after_seconds=3600))

    assert sorted(o["requeued"] for o in outcomes) == [0, 1]
    wait_status(lost, RunStatus.SUCCEEDED)
    assert lost.task_id != "lost-message"
    assert SleepEffect.objects.filter(run=lost).count() == 1
    assert status_of(recent) == RunStatus.QUEUED


def test_the_scan_polls_each_waiting_run_once_even_when_two_scans_overlap(user, monkeypatch):
    waiting = SleepRun.objects.create(owner=user, status=RunStatus.WAITING, remote_job_id="job-1")
    polls: list[str] = []

    def poll_remote(run) -> None:  # the provider answers slowly; the second scan must skip it
        polls.append(str(run.pk))
        time.sleep(1)
        lifecycle.transition(run, RunStatus.SUCCEEDED, only_from=lifecycle.IN_PROGRESS)

    monkeypatch.setitem(pollers._pollers, SleepRun, poll_remote)
    outcomes = in_threads(2, maintenance.scan)

    assert polls == [str(waiting.pk)]
    assert sorted(o["polled"] for o in outcomes) == [0, 1]
    assert status_of(waiting) == RunStatus.SUCCEEDED


# Clean up


def artifact(name: str, *, age_seconds: float = 0) -> Path:
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"artifact")
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def finished_run(user, *, days_ago: float, status=RunStatus.SUCCEEDED) -> SleepRun:
    run = SleepRun.objects.create(owner=user, status=status)
    SleepRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    SleepResult.objects.create(run=run, steps_done=1)
    return run


def test_cleanup_removes_old_runs_with_their_results_and_files_and_keeps_the_rest(user):
    old = finished_run(user, days_ago=40)
    old_failed = finished_run(user, days_ago=31, status=RunStatus.FAILED)
    recent = finished_run(user, days_ago=2)
    running = SleepRun.objects.create(owner=user, status=RunStatus.RUNNING)
    old_file = artifact(f"sleeper/{old.pk}/out.bin", age_seconds=7200)
    recent_file = artifact(f"sleeper/{recent.pk}/out.bin", age_seconds=7200)

    outcome = maintenance.cleanup(retention_days=30)

    assert outcome["runs"] == 2
    assert set(SleepRun.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not SleepResult.objects.filter(run_id__in=[old.pk, old_failed.pk]).exists()
    assert not old_file.exists() and not old_file.parent.exists()
    assert recent_file.exists()


def test_cleanup_deletes_a_pruned_runs_folder_through_the_storage_at_once(user):
    old = finished_run(user, days_ago=40, status=RunStatus.FAILED)
    recent = finished_run(user, days_ago=2)
    # Young files: not the orphan sweep's (its grace), so the prune itself must delete them.
    old_files = [artifact(f"sleeper/{old.pk}/line-{n}.wav") for n in range(3)]
    recent_file = artifact(f"sleeper/{recent.pk}/line-0.wav")

    maintenance.cleanup(retention_days=30, orphan_grace_seconds=3600)

    assert not any(path.exists() for path in old_files)
    assert not old_files[0].parent.exists()
    assert recent_file.exists()


def test_cleanup_locks_only_the_kinds_with_expired_runs(user):
    old = finished_run(user, days_ago=40)
    finished_run(user, days_ago=2)

    with CaptureQueriesContext(connection) as queries:
        assert maintenance.cleanup(retention_days=30)["runs"] == 1

    locks = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"] and "`ops_" not in q["sql"]]
    assert len(locks) == 1 and locks[0].startswith("SELECT `sleeper_sleeprun`")  # a short batch
    assert not SleepRun.objects.filter(pk=old.pk).exists()

    with CaptureQueriesContext(connection) as queries:
        assert maintenance.cleanup(retention_days=30)["runs"] == 0
    assert not [q for q in queries if "FOR UPDATE" in q["sql"] and "`ops_" not in q["sql"]]


def test_cleanup_deletes_expired_celery_results_in_batches():
    expired_at = timezone.now() - timedelta(seconds=settings.CELERY_RESULT_EXPIRES + 60)
    TaskResult.objects.bulk_create(
        TaskResult(task_id=f"old-{i}", status="SUCCESS")
        for i in range(maintenance.BATCH + 20)  # more than one batch
    )
    TaskResult.objects.create(task_id="new", status="SUCCESS")
    # date_done is auto_now: age the rows afterwards.
    TaskResult.objects.filter(task_id__startswith="old-").update(date_done=expired_at)

    assert maintenance.cleanup()["task_results"] == maintenance.BATCH + 20
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]


def test_two_cleanups_at_once_delete_each_run_once(user):
    runs = [finished_run(user, days_ago=60) for _ in range(30)]

    outcomes = in_threads(2, lambda: maintenance.cleanup(retention_days=30))

    assert sum(o["runs"] for o in outcomes) == len(runs)
    assert not SleepRun.objects.exists()
