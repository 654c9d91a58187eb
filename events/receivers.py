"""What events does when the lifecycle speaks (connected in EventsConfig.ready())."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache

from django.db import connections, router, transaction
from django.db.models import sql

from runs import statements
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
    insert_history(kind, changes)
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


def insert_history(kind: str, changes: list[RunChange]) -> None:
    """The history rows of a batch of changes in one multi-row INSERT, stamped with the
    database's clock. Not `bulk_create`: with an expression in every row (`at`) it compiles each
    row field by field, about 0.1 ms a row, more than the INSERT itself; and the statement's
    parts are built once per database, as a lifecycle transition (one row) is the hot path."""
    alias = router.db_for_write(RunEvent)
    connection = connections[alias]
    head, row, fields, now_params = history_insert(alias)
    size = max(connection.ops.bulk_batch_size([*fields, "at"], changes), 1)  # a row's parameters
    for start in range(0, len(changes), size):
        batch = changes[start : start + size]
        params: list = []
        for change in batch:
            values = history_values(kind, change)
            params += [
                f.get_db_prep_save(v, connection) for f, v in zip(fields, values, strict=True)
            ]
            params += now_params
        statements.write(head + ", ".join([row] * len(batch)), params, db=connection)


@cache
def history_insert(alias: str) -> tuple[str, str, list, list]:
    """`INSERT INTO … VALUES `, one row's placeholders (the time: the database's clock), the
    fields the parameters stand for, and the clock's own parameters."""
    connection = connections[alias]
    by_name = {field.name: field for field in RunEvent._meta.concrete_fields}
    fields = [by_name[name] for name in HISTORY_FIELDS]
    at = by_name["at"]
    now, now_params = (
        sql.InsertQuery(RunEvent).get_compiler(connection=connection).compile(UtcNow())
    )
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in [*fields, at])
    table = connection.ops.quote_name(RunEvent._meta.db_table)
    row = f"({', '.join(['%s'] * len(fields) + [now])})"
    return f"INSERT INTO {table} ({columns}) VALUES ", row, fields, list(now_params)


HISTORY_FIELDS = (
    "run_id", "kind", "owner_id", "from_status", "to_status", "attempt", "host", "pid", "reason",
    "message",
)  # fmt: skip


def history_values(kind: str, change: RunChange) -> tuple:
    """A change's row in the order of HISTORY_FIELDS."""
    return (
        change.run_id, kind, change.owner_id, change.from_status, change.to_status,
        change.attempt, change.host[:255], change.pid, change.reason[:255], change.message[:255],
    )  # fmt: skip


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
