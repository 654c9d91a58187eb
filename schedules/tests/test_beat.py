"""Real beat processes with the leased scheduler: one fires, a killed leader is replaced, and the
scan relays runs submitted while the broker was down."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult
from rest_framework.authtoken.models import Token

from runs.models import RunStatus
from runs.tests.helpers import RedisServer, start_web, start_worker, wait_for
from runs.tests.sleeper.models import SleepEffect, SleepRun
from schedules.beat import hold_lease, last_tick, lease_holder, release_lease
from schedules.tests.helpers import (
    executions,
    leader_pid,
    send_times,
    sends,
    start_beat,
    tick_schedule,
)

pytestmark = pytest.mark.django_db(transaction=True)

TICK = "test tick"


def test_a_lease_goes_to_one_holder_until_it_expires_or_is_released():
    assert hold_lease("first", 2)
    assert not hold_lease("second", 2)
    assert hold_lease("first", 2)  # renewing our own
    assert lease_holder() == "first"
    time.sleep(2.2)
    assert hold_lease("second", 2)  # expired: taken over
    release_lease("second")
    assert lease_holder() is None
    assert hold_lease("first", 2)


@pytest.mark.usefixtures("celery_worker")
def test_two_beats_fire_each_tick_once_and_the_survivor_takes_over_a_killed_leader(broker_url):
    tick_schedule(TICK, 1)
    first = start_beat(broker_url, "beat-a")
    wait_for(lambda: leader_pid() == first.process.pid, timeout=30, what="beat-a to lead")
    second = start_beat(broker_url, "beat-b")
    try:
        wait_for(lambda: len(executions(TICK)) >= 22, timeout=90, what="22 ticks")
        assert sends(second, TICK) == 0, "the follower fired"
        # Every firing of both beats, by the beats' own clocks: a tick fired twice would show
        # as two sends well under the 1 s interval apart.
        fired = sorted(send_times(first, TICK) + send_times(second, TICK))
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]
        assert min(gaps) > 0.5, f"a tick fired twice: {gaps}"
        ran = TaskResult.objects.filter(periodic_task_name=TICK, task_name="runs.scan")
        assert len(executions(TICK)) >= 22 and ran.count() <= len(fired)  # one run per firing
        ticked = last_tick()
        assert ticked is not None and ticked.tzinfo is not None
        assert timezone.now() - ticked < timedelta(seconds=10)

        os.killpg(first.process.pid, signal.SIGKILL)
        killed_at = timezone.now()
        wait_for(
            lambda: any(done > killed_at for done in executions(TICK)),
            timeout=30,
            what="the surviving beat to fire within 30 s",
        )
        assert leader_pid() == second.process.pid
        assert "now leads" in second.log()
        before_kill = [done for done in executions(TICK) if done <= killed_at]
        after_kill = [done for done in executions(TICK) if done > killed_at]
        assert (after_kill[0] - before_kill[-1]).total_seconds() < 30
    finally:
        first.stop()
        second.stop()


def test_a_run_submitted_while_redis_is_down_is_dispatched_by_the_scan_once_it_is_back(user):
    own_redis = RedisServer().start()
    web, base = start_web(own_redis.url)
    worker = start_worker(own_redis.url, concurrency=1)
    tick_schedule("scan async runs", 2, pending_grace_seconds=0)
    beat = start_beat(own_redis.url)
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
        time.sleep(5)  # two scan periods with no broker: nothing can dispatch it
        run.refresh_from_db()
        assert run.status == RunStatus.PENDING

        own_redis.start()
        wait_for(
            lambda: SleepRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED,
            timeout=90,
            what="the scan to dispatch the run and the worker to finish it",
        )
        scans = TaskResult.objects.filter(task_name="runs.scan", status="SUCCESS")
        relayed = [json.loads(r)["dispatched"] for r in scans.values_list("result", flat=True)]
        assert relayed.count(1) == 1
        assert SleepEffect.objects.filter(run=run).count() == 1
    finally:
        beat.stop()
        worker.stop()
        web.stop()
        own_redis.stop()
