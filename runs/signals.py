"""What the lifecycle tells the rest of the project, without knowing who listens.

`run_changed` is sent after every status change a process makes (a conditional UPDATE that
matched, or a batch of them), `run_progressed` after a step records progress. Receivers (the run
history, live streams, webhooks) connect in their AppConfig.ready(); runs imports none of them.
A receiver runs inside the sender's transaction when there is one: it may write rows that commit
with the change, and must defer anything outside the database to `transaction.on_commit`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from functools import cache

from django.dispatch import Signal

# sender: the run model; change: a RunChange
run_changed = Signal()
# sender: the run model; run: the Run instance (progress, stage, message as just written)
run_progressed = Signal()
# sender: the run model; pks: ids of runs just deleted (cleanup), inside the deleting transaction
runs_deleted = Signal()


@cache
def hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class RunChange:
    """One run's move from one status to another, as the process that made it saw it."""

    run_id: object
    owner_id: object
    from_status: str  # "" when the sender did not know it (a batch over several statuses)
    to_status: str
    attempt: int
    reason: str = ""
    # The run as the change left it, so receivers need not read it again.
    message: str = ""
    progress: int | None = None
    stage: str = ""
    # The run's callback URL when the sender had it loaded ("" for none), None when unknown.
    callback_url: str | None = None
    host: str = field(default_factory=hostname)
    pid: int = field(default_factory=os.getpid)


def changed(
    model, runs, to_status: str, *, reason: str = "", from_status: str | None = None, **fields
) -> None:
    """Tell the receivers that `runs` (instances, read before the change) moved to `to_status`."""
    changes = [
        RunChange(
            run_id=run.pk,
            owner_id=run.owner_id,
            from_status=str(from_status if from_status is not None else run.status),
            to_status=str(to_status),
            attempt=int(fields.get("attempt", run.attempt)),
            reason=reason,
            message=str(left(run, fields, "message") or ""),
            progress=left(run, fields, "progress"),
            stage=str(left(run, fields, "stage") or ""),
            callback_url=run.__dict__.get("callback_url"),  # never a query for a deferred field
        )
        for run in runs
    ]
    if changes:
        run_changed.send(sender=model, changes=changes)


def left(run, fields: dict, name: str):
    """A field's value after the change: what the UPDATE wrote, else the instance's (None when the
    UPDATE wrote an expression, whose value only the database knows)."""
    value = fields.get(name, getattr(run, name))
    return None if hasattr(value, "resolve_expression") else value
