"""The run lifecycle through a real broker and a real prefork worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from celery import current_app
from rest_framework.authtoken.models import Token

from runs import lifecycle
from runs.models import RunStatus
from runs.tests.helpers import (
    PYTHON,
    ROOT,
    RedisServer,
    both_brokers,
    service_env,
    start_web,
    start_worker,
    wait_for,
)
from runs.tests.sleeper.models import SleepEffect, SleepResult, SleepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def make_run(user, **fields) -> SleepRun:
    return SleepRun.objects.create(owner=user, **fields)


def status_of(run) -> str:
    run.refresh_from_db()
    return run.status


def wait_status(run, *statuses, timeout=30):
    wait_for(lambda: status_of(run) in statuses, timeout=timeout, what=f"run to be {statuses}")
    return run


def wait_gone(path: Path) -> None:
    """The worker removes a run's temporary folder just after it records the end."""
    wait_for(lambda: not path.exists(), timeout=10, what=f"{path} to be removed")


def worker_is_idle() -> bool:
    inspect = current_app.control.inspect(timeout=1)
    busy = [inspect.active() or {}, inspect.scheduled() or {}, inspect.reserved() or {}]
    return not any(tasks for replies in busy for tasks in replies.values())


@both_brokers
def test_a_run_goes_from_pending_through_queued_and_running_to_succeeded(user, broker):
    run = make_run(user, steps=4, seconds_per_step=0.5)
    assert run.status == RunStatus.PENDING

    assert lifecycle.dispatch(run)
    run.refresh_from_db()
    assert run.status in (RunStatus.QUEUED, RunStatus.RUNNING)
    assert run.task_id and run.queued_at

    wait_status(run, RunStatus.RUNNING)
    wait_for(lambda: SleepRun.objects.get(pk=run.pk).progress > 0, what="progress")
    wait_status(run, RunStatus.SUCCEEDED)

    assert run.progress == 100
    assert run.attempt == 1
    assert run.created_at <= run.queued_at <= run.started_at <= run.finished_at
    assert SleepResult.objects.get(run=run).steps_done == 4


@both_brokers
def test_a_finished_run_ignores_a_late_failure(user, broker):
    run = make_run(user)
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.SUCCEEDED)

    late = lifecycle.RunContext(run)  # a worker of the same attempt, reporting late
    assert not lifecycle.finish(late, RunStatus.FAILED, message="late")
    assert not lifecycle.transition(run, RunStatus.FAILED, only_from=lifecycle.IN_PROGRESS)
    assert status_of(run) == RunStatus.SUCCEEDED
    assert run.message == ""


@both_brokers
def test_a_cancelled_run_ignores_a_late_delivery(user, broker):
    run = make_run(user)
    assert lifecycle.request_cancel(run)
    assert status_of(run) == RunStatus.CANCELLED

    current_app.send_task(SleepRun.task_name, args=[str(run.pk)])
    wait_for(worker_is_idle, what="the delivery to be handled")
    time.sleep(1)

    assert status_of(run) == RunStatus.CANCELLED
    assert run.attempt == 0
    assert not SleepResult.objects.filter(run=run).exists()


@both_brokers
def test_the_same_message_delivered_twice_has_one_effect(user, broker):
    run = make_run(user, steps=3, seconds_per_step=0.5)
    lifecycle.dispatch(run)
    run.refresh_from_db()
    current_app.send_task(SleepRun.task_name, args=[str(run.pk)], task_id=run.task_id)

    wait_status(run, RunStatus.SUCCEEDED)
    wait_for(worker_is_idle, timeout=30, what="the duplicate to be handled")

    assert SleepEffect.objects.filter(run=run).count() == 1
    assert SleepResult.objects.filter(run=run).count() == 1
    assert status_of(run) == RunStatus.SUCCEEDED
    assert run.attempt == 1


def active_child_pid(task_id: str) -> int | None:
    for tasks in (current_app.control.inspect(timeout=1).active() or {}).values():
        for task in tasks:
            if task["id"] == task_id:
                return task["worker_pid"]
    return None


@both_brokers
def test_a_worker_child_killed_mid_run_is_redelivered_and_finishes_once(user, broker):
    run = make_run(user, steps=8, seconds_per_step=0.5)
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.RUNNING)
    pid = wait_for(lambda: active_child_pid(run.task_id), what="the task to be active")

    os.kill(pid, signal.SIGKILL)

    wait_status(run, RunStatus.SUCCEEDED, timeout=60)
    assert run.attempt == 2
    assert list(SleepEffect.objects.filter(run=run).values_list("attempt", flat=True)) == [2]
    assert SleepResult.objects.filter(run=run).count() == 1


@both_brokers
def test_exhausted_attempts_end_the_run_failed(user, broker):
    run = make_run(user, attempt=3, max_attempts=3)
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.FAILED)
    assert "Gave up after 3 attempts" in run.message
    assert not SleepEffect.objects.filter(run=run).exists()


@both_brokers
def test_an_exception_fails_the_run_with_a_readable_message(user, broker):
    run = make_run(user, fail_with="error")
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.FAILED)
    assert run.message == "the sleeper was told to fail"
    assert "ValueError" in run.error


@both_brokers
def test_a_transient_error_retries_within_the_attempts(user, broker):
    run = make_run(user, fail_with="transient")
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.SUCCEEDED, timeout=60)
    assert run.attempt == 2
    assert SleepEffect.objects.filter(run=run).count() == 1


@both_brokers
def test_the_soft_time_limit_ends_the_run_timed_out_and_removes_its_temp_files(user, broker):
    run = make_run(user, steps=40, seconds_per_step=0.25)
    lifecycle.dispatch(run)  # marks it queued; this message carries the default limits
    run.refresh_from_db()
    assert lifecycle.request_cancel(run)  # drop that message's run ...
    # ... and send a fresh run with a two-second soft limit, as a short task kind would have.
    run = make_run(user, steps=40, seconds_per_step=0.25, status=RunStatus.QUEUED)
    current_app.send_task(SleepRun.task_name, args=[str(run.pk)], soft_time_limit=2, time_limit=30)
    wait_status(run, RunStatus.TIMED_OUT)
    assert run.temp_marker
    wait_gone(Path(run.temp_marker).parent)
    assert run.progress < 100
    assert not SleepEffect.objects.filter(run=run).exists()


@both_brokers
def test_the_cancel_flag_stops_a_run_between_steps(user, broker):
    run = make_run(user, steps=40, seconds_per_step=0.25)
    lifecycle.dispatch(run)
    wait_for(lambda: SleepRun.objects.get(pk=run.pk).progress > 0, what="the run to progress")

    assert lifecycle.request_cancel(run)

    wait_status(run, RunStatus.CANCELLED, timeout=10)
    assert 0 < run.progress < 100
    assert not SleepEffect.objects.filter(run=run).exists()
    wait_gone(Path(run.temp_marker))


@both_brokers
def test_retry_sends_a_failed_run_round_again(user, broker):
    run = make_run(user, fail_with="error")
    lifecycle.dispatch(run)
    wait_status(run, RunStatus.FAILED)
    SleepRun.objects.filter(pk=run.pk).update(fail_with="")

    assert lifecycle.retry(run)  # autocommit: dispatched at once
    wait_status(run, RunStatus.SUCCEEDED)
    assert run.attempt == 2
    assert run.max_attempts == 1 + 3


def test_with_the_broker_down_a_submitted_run_stays_pending_and_is_sent_once_later(user):
    own_redis = RedisServer().start()
    web, base = start_web(own_redis.url)
    worker = start_worker(own_redis.url, concurrency=1)
    token = Token.objects.create(user=user).key
    try:
        own_redis.stop()
        reply = httpx.post(
            f"{base}/api/test/sleep-runs/",
            json={"steps": 1},
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        assert reply.status_code == 202, reply.text
        run = SleepRun.objects.get(pk=reply.json()["id"])
        assert reply.json()["status"] == run.status == RunStatus.PENDING

        own_redis.start()
        relay = [PYTHON, "manage.py", "dispatch_pending"]
        env = service_env(CELERY_BROKER_URL=own_redis.url)
        first = subprocess.run(relay, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert "Dispatched 1 pending run(s)." in first.stdout

        wait_status(run, RunStatus.SUCCEEDED, timeout=60)
        again = subprocess.run(relay, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        assert "Dispatched 0 pending run(s)." in again.stdout
        assert SleepEffect.objects.filter(run=run).count() == 1
    finally:
        worker.stop()
        web.stop()
        own_redis.stop()
