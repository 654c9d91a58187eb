"""The outbox relay: runs the broker refused, or lost, sent again in batches.

The Run row is the outbox. `runs.lifecycle.dispatch` sends one run after commit; what the broker
refused stays `pending`, and the scan (or `manage.py dispatch_pending`) relays it here: claim a
batch with SKIP LOCKED, mark it `queued` with fresh task ids in one UPDATE, commit, then send.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone
from kombu.exceptions import OperationalError

from . import signals
from .models import Priority, Run, RunStatus, run_models
from .routing import RUN_PRIORITY_LEVELS, broker_priority

logger = logging.getLogger(__name__)

# What a `run_changed` receiver is told about each run (runs.signals.RunChange).
CHANGE_FIELDS = ("pk", "owner_id", "status", "attempt", "progress", "stage", "message")


def message_priority(priority: str) -> int:
    """A run's priority as Celery message priority, in the order of the broker it goes to."""
    return broker_priority(RUN_PRIORITY_LEVELS.get(priority, RUN_PRIORITY_LEVELS[Priority.NORMAL]))


BATCH = 500  # rows per relay or maintenance pass: bounded work and short locks


def lock_batch(queryset: QuerySet, limit: int = BATCH) -> list[Run]:
    """Claim rows until commit; a concurrent pass skips them (SKIP LOCKED) instead of waiting."""
    return list(queryset.select_for_update(skip_locked=True).order_by()[:limit])


def mark_queued(
    model: type[Run], runs: list[Run], *, message: str | None = None, reason: str = "dispatched"
) -> dict:
    """Mark runs this transaction holds locked `queued` with fresh task ids, in one UPDATE.

    `dispatch`'s protocol, set-based: send with `send_marked` once the transaction commits.
    """
    task_ids = {run.pk: str(uuid.uuid4()) for run in runs}
    if task_ids:
        fields = {"message": message} if message is not None else {}
        model.objects.filter(pk__in=task_ids).update(
            status=RunStatus.QUEUED,
            queued_at=timezone.now(),
            task_id=Case(*(When(pk=pk, then=Value(tid)) for pk, tid in task_ids.items())),
            **fields,
        )
        signals.changed(model, runs, RunStatus.QUEUED, reason=reason, **fields)
    return task_ids


def send_marked(model: type[Run], runs: list[Run], task_ids: dict, *, urgent: bool = False) -> int:
    """Send the marked runs' tasks; at the first refusal the rest go back to `pending` at once,
    so a broker outage costs one connection timeout, not one per run. Returns how many went.

    `urgent` sends at the highest priority, ahead of any backlog: for runs rescued from a dead
    worker or a lost message, which have waited their turn once already.
    """
    for sent, run in enumerate(runs):
        priority = Priority.HIGH if urgent else run.priority
        try:
            current_app.send_task(
                run.task_name,
                args=[str(run.pk)],
                task_id=task_ids[run.pk],
                priority=message_priority(priority),
            )
        except (OperationalError, OSError) as exc:
            unsent = [task_ids[r.pk] for r in runs[sent:]]
            back = model.objects.filter(status=RunStatus.QUEUED, task_id__in=unsent)
            returned = list(back.only(*CHANGE_FIELDS))
            if back.filter(pk__in=[r.pk for r in returned]).update(status=RunStatus.PENDING):
                signals.changed(model, returned, RunStatus.PENDING, reason="the broker refused it")
            logger.warning("%s run(s) stay pending, the broker refused them: %s", len(unsent), exc)
            return sent
    return len(runs)


def requeue_after_commit(
    model: type[Run],
    runs: list[Run],
    *,
    message: str | None = None,
    urgent: bool = False,
    reason: str = "dispatched",
) -> None:
    """Mark locked runs queued now and send them once the surrounding transaction commits."""
    task_ids = mark_queued(model, runs, message=message, reason=reason)
    if task_ids:
        transaction.on_commit(lambda: send_marked(model, runs, task_ids, urgent=urgent))


def relay_pending(*, older_than_seconds: float = 0) -> int:
    """Dispatch runs left `pending` (the broker was down at submit); returns how many went.

    Of two relays running at once, each claims different rows, so no run is sent twice.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for model in run_models():
        with transaction.atomic():
            pending = model.objects.filter(status=RunStatus.PENDING, created_at__lte=cutoff)
            runs = lock_batch(pending)
            task_ids = mark_queued(model, runs)
        sent += send_marked(model, runs, task_ids)
    return sent
