"""What events does when the lifecycle speaks (connected in EventsConfig.ready())."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, cast

from django.db import transaction

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
    RunEvent.objects.bulk_create(
        RunEvent(
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
        for change in changes
    )
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
