"""The lifecycle's statements written once (runs.statements) read and write what the ORM would."""

from __future__ import annotations

import uuid

import pytest
from django.db.models import F
from django.utils import timezone

from events.models import RunEvent
from runs import lifecycle, statements
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db


def test_a_run_read_once_is_the_run_the_orm_reads(user):
    run = SleepRun.objects.create(
        owner=user,
        checkpoints={"paid call": {"attempt": 1}},
        run_at=timezone.now(),
        cancel_requested=True,
        seconds_per_step=0.25,
    )

    read = statements.read(SleepRun, str(run.pk))

    assert read is not None and not read._state.adding
    orm = SleepRun.objects.get(pk=run.pk)
    for field in SleepRun._meta.concrete_fields:
        mine, theirs = getattr(read, field.attname), getattr(orm, field.attname)
        assert (mine, type(mine)) == (theirs, type(theirs)), field.name
    assert statements.read(SleepRun, str(uuid.uuid4())) is None


def test_an_update_is_fenced_by_status_and_attempt(user):
    run = SleepRun.objects.create(owner=user, status=RunStatus.RUNNING, attempt=2)
    now = timezone.now()

    def update(attempt: int, only_from: frozenset) -> int:
        values = {"status": RunStatus.SUCCEEDED, "finished_at": now, "checkpoints": {"a": 1}}
        return statements.update(SleepRun, run.pk, values, only_from=only_from, attempt=attempt)

    assert update(1, lifecycle.IN_PROGRESS) == 0  # a superseded attempt
    assert update(2, frozenset({RunStatus.QUEUED})) == 0  # not in an allowed status
    assert update(2, lifecycle.IN_PROGRESS) == 1
    run.refresh_from_db()
    assert (run.status, run.finished_at, run.checkpoints) == (RunStatus.SUCCEEDED, now, {"a": 1})


def test_a_transition_with_an_expression_goes_through_the_orm_and_is_recorded(user):
    run = SleepRun.objects.create(owner=user, status=RunStatus.FAILED, attempt=3, max_attempts=3)

    assert lifecycle.transition(
        run, RunStatus.PENDING, only_from=lifecycle.RETRYABLE, max_attempts=F("attempt") + 3
    )

    assert (run.status, run.max_attempts) == (RunStatus.PENDING, 6)
    history = RunEvent.objects.get(run_id=run.pk)
    assert (history.from_status, history.to_status, history.attempt) == ("failed", "pending", 3)
