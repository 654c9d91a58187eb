"""What events does when the lifecycle speaks (connected in EventsConfig.ready())."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field
from django.db.models.sql import InsertQuery

from runs.signals import RunChange

from . import streams
from .models import RunEvent, UtcNow

logger = logging.getLogger(__name__)


def kind_of(model) -> str:
    return model._meta.label_lower


def record_changes(sender, changes: list[RunChange], **kwargs) -> None:
    """Write the history rows in the sender's transaction (they commit or roll back with the
    change), and publish the live events once it commits, each with the run's progress, stage
    and message as the change left them (carried by the change, not read again)."""
    kind = kind_of(sender)
    rows = [history_row(change, kind) for change in changes]
    if len(rows) == 1:
        insert_one(rows[0])  # a lifecycle transition: the hot path
    else:
        RunEvent.objects.bulk_create(rows)
    if not streams.enabled():
        return
    now = datetime.now(UTC)
    outgoing = []
    for change in changes:
        data = streams.event(
            change.run_id,
            kind,
            status=change.to_status,
            progress=change.progress,
            stage=change.stage,
            message=change.message,
            attempt=change.attempt,
            reason=change.reason,
            at=now,
        )
        outgoing.append(streams.Outgoing(change.owner_id, data))
    transaction.on_commit(lambda: streams.publish(outgoing), robust=True)


def history_row(change: RunChange, kind: str) -> RunEvent:
    return RunEvent(
        run_id=cast(Any, change.run_id),
        kind=kind,
        owner_id=cast(Any, change.owner_id),
        at=UtcNow(),
        from_status=change.from_status,
        to_status=change.to_status,
        attempt=change.attempt,
        host=change.host[:255],
        pid=change.pid,
        reason=change.reason[:255],
        message=change.message[:255],
    )


@cache
def insert_one_sql() -> tuple[str, list[Field]]:
    """The SQL of a one-row INSERT of a RunEvent, as Django writes it (the time is the database's,
    `UtcNow`), and the fields its parameters stand for, in order."""
    fields = [field for field in RunEvent._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(RunEvent)
    query.insert_values(fields, [history_row(RunChange(uuid.UUID(int=0), 0, "", "", 0), "")])
    [(sql, _)] = query.get_compiler(connection=connection).as_sql()
    return sql, [field for field in fields if field.name != "at"]


def insert_one(row: RunEvent) -> None:
    """`bulk_create([row])` without compiling the INSERT again for every transition."""
    sql, fields = insert_one_sql()
    params = [field.get_db_prep_save(getattr(row, field.attname), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def publish_progress(sender, run, **kwargs) -> None:
    """A step's progress goes to the live streams only; the history keeps transitions."""
    if not streams.enabled():
        return
    data = streams.event(
        run.pk,
        kind_of(sender),
        status=run.status,
        progress=run.progress,
        stage=run.stage,
        message=run.message,
        attempt=run.attempt,
    )
    outgoing = [streams.Outgoing(run.owner_id, data)]
    transaction.on_commit(lambda: streams.publish(outgoing), robust=True)


def forget_runs(sender, pks: list, **kwargs) -> None:
    """Cleanup deleted these runs: their history goes in the same transaction."""
    RunEvent.objects.filter(kind=kind_of(sender), run_id__in=pks).delete()


def after_cleanup(sender=None, **kwargs) -> None:
    """After the nightly cleanup task: a bounded pass over history whose run is gone another way
    (deleted in the admin, with its user)."""
    if getattr(sender, "name", "") != "runs.cleanup":
        return
    from .maintenance import prune_orphans

    try:
        deleted = prune_orphans()
    except Exception:
        logger.exception("pruning the history of deleted runs failed")
        return
    if deleted:
        logger.info("deleted %s history row(s) of runs that no longer exist", deleted)
