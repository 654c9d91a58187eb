"""A canvas run stays alive while its next part waits in the queue, and only that long."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from runs import canvas, lifecycle, maintenance
from runs.models import RunStatus
from runs.tests.helpers import wait_for
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db(transaction=True)

STALE_AFTER = 3  # seconds; the test settings beat every second


def part_just_ended(user, stage="script written") -> lifecycle.RunContext:
    run = SleepRun.objects.create(
        owner=user, status=RunStatus.RUNNING, attempt=1, stage=stage, heartbeat_at=timezone.now()
    )
    ctx = canvas.PartContext(run)
    lifecycle.heartbeats.track(canvas.BetweenParts(ctx))
    return ctx


def check_timeouts() -> dict:
    return maintenance.check_timeouts(stale_after_seconds=STALE_AFTER)


def test_a_run_between_two_parts_is_not_taken_for_dead(user):
    ctx = part_just_ended(user)

    time.sleep(STALE_AFTER + 1.5)

    assert check_timeouts() == {"timed_out": 0, "redispatched": 0}
    ctx.run.refresh_from_db()
    assert ctx.run.status == RunStatus.RUNNING
    assert (timezone.now() - ctx.run.heartbeat_at).total_seconds() < STALE_AFTER


def test_the_gap_beat_stops_once_the_next_part_records_a_step(user):
    ctx = part_just_ended(user)
    SleepRun.objects.filter(pk=ctx.run.pk).update(stage="composing")  # the next part started

    def stale() -> bool:
        ctx.run.refresh_from_db()
        return (timezone.now() - ctx.run.heartbeat_at).total_seconds() > STALE_AFTER

    wait_for(stale, timeout=STALE_AFTER + 5, what="the heartbeat to go stale")
    assert check_timeouts()["redispatched"] == 1


def test_the_gap_beat_stops_after_the_longest_gap(user, settings):
    settings.RUN_PART_GAP_SECONDS = 1
    ctx = part_just_ended(user)

    time.sleep(STALE_AFTER + 2.5)

    assert check_timeouts()["redispatched"] == 1
    ctx.run.refresh_from_db()
    # Sent round again (a worker of the suite may already have taken it).
    assert ctx.run.status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED)
