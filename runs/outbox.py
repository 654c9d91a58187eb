"""The outbox relay: runs the broker refused, or lost, sent again in batches.

The Run row is the outbox. `runs.lifecycle.dispatch` sends one run after commit; what the broker
refused stays `pending`, and the scan (or `manage.py dispatch_pending`) relays it here: claim a
batch with SKIP LOCKED, mark it `queued` with fresh task ids in one UPDATE, commit, then send.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta

from celery import current_app
from django.db import connection, transaction
from django.db.models import CharField, Expression, QuerySet
from django.utils import timezone
from kombu.exceptions import KombuError

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


def kinds_with(
    rows: Callable[[type[Run]], QuerySet], kinds: list[type[Run]] | None = None
) -> list[type[Run]]:
    """The run kinds that have a row in `rows(kind)`: plain reads, one round trip for all kinds,
    so a maintenance step opens a transaction (and takes locks) only where there is work."""
    kinds = run_models() if kinds is None else kinds
    if not kinds:
        return []
    tests: list[str] = []
    params: list = []
    for kind in kinds:
        sql, args = rows(kind).order_by().values("pk")[:1].query.sql_with_params()
        tests.append(f"EXISTS ({sql})")
        params += args
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(tests)}", params)
        found = cursor.fetchone()
    return [kind for kind, has_rows in zip(kinds, found, strict=True) if has_rows]


def lock_batch(queryset: QuerySet, limit: int = BATCH) -> list[Run]:
    """Claim rows until commit; a concurrent pass skips them (SKIP LOCKED) instead of waiting."""
    return list(queryset.select_for_update(skip_locked=True).order_by()[:limit])


class ByPk(Expression):
    """`CASE id WHEN <pk> THEN <value> ... END`: one value per row in one UPDATE. Django's
    `Case(When(pk=...))` says the same but builds a lookup per row, a few hundred µs each."""

    output_field = CharField()

    def __init__(self, model: type[Run], values: dict) -> None:
        super().__init__()
        self.pk_field = model._meta.pk
        self.values = values

    def as_sql(self, compiler, connection):
        column = compiler.quote_name_unless_alias(self.pk_field.column)
        params: list = []
        for pk, value in self.values.items():
            params += [self.pk_field.get_db_prep_value(pk, connection), value]
        whens = " ".join(["WHEN %s THEN %s"] * len(self.values))
        return f"CASE {column} {whens} END", params


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
            task_id=ByPk(model, task_ids),
            **fields,
        )
        signals.changed(model, runs, RunStatus.QUEUED, reason=reason, **fields)
    return task_ids


def send_marked(model: type[Run], runs: list[Run], task_ids: dict, *, urgent: bool = False) -> int:
    """Send the marked runs' tasks through one producer; returns how many went.

    On Redis the messages (and their task-sent events) go in one pipeline when the batch ends,
    one round trip instead of two per run. If the broker refuses, the runs not known to be sent
    go back to `pending` at once, so an outage costs one connection timeout, not one per run; a
    message that did arrive finds its run pending and claims it all the same (`CLAIMABLE`).

    `urgent` sends at the highest priority, ahead of any backlog: for runs rescued from a dead
    worker or a lost message, which have waited their turn once already.
    """
    if not runs:
        return 0
    sent = 0
    batched = False
    try:
        with current_app.producer_or_acquire() as producer:
            # One run (the API's submit) goes straight out: a batch costs a Redis client of its own.
            batched = producer.supports_batch_publish and len(runs) > 1
            # Room for every message and its event: one flush, at the end of the batch.
            with producer.batch(max_size=4 * len(runs)) if batched else nullcontext():
                for run in runs:
                    send_run(run, task_ids[run.pk], producer, urgent=urgent)
                    sent += 1
    except (KombuError, OSError) as exc:  # OperationalError, BatchPublishError (uncertain)
        unsent = runs if batched else runs[sent:]  # a failed pipeline may have sent any of them
        return_to_pending(model, [task_ids[run.pk] for run in unsent], exc)
        return 0 if batched else sent
    return sent


def send_run(run: Run, task_id: str, producer, *, urgent: bool) -> None:
    priority = Priority.HIGH if urgent else run.priority
    args = [str(run.pk)]
    current_app.send_task(
        run.task_name,
        args=args,
        task_id=task_id,
        priority=message_priority(priority),
        producer=producer,
        # What Celery would write (saferepr of a list of one id), without its ~0.05 ms a message.
        argsrepr=repr(args),
        kwargsrepr="{}",
    )


def return_to_pending(model: type[Run], task_ids: list[str], exc: Exception) -> None:
    """Runs still `queued` under these task ids go back to `pending` for the next relay."""
    back = model.objects.filter(status=RunStatus.QUEUED, task_id__in=task_ids)
    returned = list(back.only(*CHANGE_FIELDS))
    if back.filter(pk__in=[r.pk for r in returned]).update(status=RunStatus.PENDING):
        signals.changed(model, returned, RunStatus.PENDING, reason="the broker refused it")
    logger.warning("%s run(s) stay pending, the broker refused them: %s", len(task_ids), exc)


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


def pending_since(model: type[Run], cutoff) -> QuerySet:
    return model.objects.filter(status=RunStatus.PENDING, created_at__lte=cutoff)


def relay_pending(*, older_than_seconds: float = 0) -> int:
    """Dispatch runs left `pending` (the broker was down at submit); returns how many went.

    Of two relays running at once, each claims different rows, so no run is sent twice.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for model in kinds_with(lambda kind: pending_since(kind, cutoff)):
        pending = pending_since(model, cutoff)
        with transaction.atomic():
            runs = lock_batch(pending)
            task_ids = mark_queued(model, runs)
        sent += send_marked(model, runs, task_ids)
    return sent
