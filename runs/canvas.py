"""Canvases: one run carried out by several tasks (a chain, a group, a chord).

The first task claims the run (one attempt) and sends the canvas; every part then runs under
that attempt through `execute_part`. A part of an older attempt, or of a run that already
ended, does nothing, so a redelivered part, or a part after another one failed, is harmless.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from kombu.exceptions import OperationalError

from engines.errors import TransientEngineError

from .lifecycle import (
    RunCancelled,
    RunContext,
    RunLost,
    Steps,
    backoff_seconds,
    claim_for,
    finish,
    heartbeat,
    heartbeats,
    readable,
    retry_later,
    time_out,
    transition,
)
from .models import Run, RunStatus

logger = logging.getLogger(__name__)


class PartContext(RunContext):
    """A RunContext for one part of a canvas: parts may run in parallel, so progress only rises."""

    def progress_update(self, progress: int):
        return Greatest(F("progress"), Value(progress))

    def progress_after(self, progress: int) -> int:
        return max(self.run.progress, progress)


class BetweenParts:
    """Keeps a canvas run alive while its next part waits in the queue behind other work.

    Between two parts no process works on the run, so nothing would refresh its heartbeat and the
    timeout check would take it for dead. The part that just ended keeps beating until another
    part records a step (the stage changes), the run leaves `running` on this attempt, or
    RUN_PART_GAP_SECONDS pass. A worker that dies stops beating, so a canvas that is really lost
    is still found stale.
    """

    def __init__(self, ctx: RunContext):
        self.run = ctx.run
        self.rows = ctx._mine().filter(stage=ctx.run.stage)
        self.until = time.monotonic() + settings.RUN_PART_GAP_SECONDS

    def beat(self) -> bool:
        if time.monotonic() > self.until:
            return False
        return self.rows.update(heartbeat_at=timezone.now()) == 1


def start_canvas(task, model: type[Run], run_id: str, build: Callable[[Run], object]) -> None:
    """Claim the run for this delivery and send the canvas `build(run)` returns; its parts end it.

    The run stays `running` once the canvas is sent; the last part marks it succeeded.
    """
    run = claim_for(task, model, run_id)
    if run is None:
        return
    ctx = RunContext(run)
    try:
        build(run).apply_async()
        logger.info("run %s canvas sent (attempt %s)", run.pk, run.attempt)
    except (OperationalError, OSError) as exc:
        retry_later(task, ctx, TransientEngineError(f"the broker refused the canvas: {exc}"))
    except Exception as exc:
        logger.exception("run %s: its canvas could not be built", run.pk)
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
    finally:
        close_old_connections()


def execute_part(
    task,
    model: type[Run],
    run_id: str,
    attempt: int,
    part: Steps,
    *,
    last: bool = False,
    max_retries: int = 3,
) -> None:
    """Run one part of a run's canvas under the attempt that sent it.

    1. skip quietly unless the run is `running` on `attempt` (a redelivery, a part after a
       failure or cancel, or a part of an attempt that was taken over);
    2. stop the run as cancelled if its cancel flag is set (the parts not yet started);
    3. run the part with a heartbeat; the `last` part ends the run succeeded;
    4. a failure fails the run (a conditional UPDATE, so once however many parts fail);
       a transient error retries this part, not the whole canvas.
    """
    close_old_connections()
    run = model.objects.filter(pk=run_id, attempt=attempt, status=RunStatus.RUNNING).first()
    if run is None:
        logger.info("%s: run %s is not running on attempt %s; skipped", task.name, run_id, attempt)
        return
    ctx = PartContext(run)
    try:
        if run.cancel_requested:
            raise RunCancelled()
        with heartbeat(ctx):
            part(run, ctx)
        if last and run.status == RunStatus.RUNNING:  # a hand-off to a provider leaves it waiting
            finish(ctx, RunStatus.SUCCEEDED, progress=100, stage="done", message="")
        elif run.status == RunStatus.RUNNING:
            heartbeats.track(BetweenParts(ctx))
    except RunCancelled:
        finish(ctx, RunStatus.CANCELLED, message="Cancelled.")
    except RunLost:
        logger.warning("run %s was taken over; %s of attempt %s stops", run.pk, task.name, attempt)
    except SoftTimeLimitExceeded:
        time_out(ctx)
    except TransientEngineError as exc:
        retries = task.request.retries or 0
        if retries >= max_retries:
            finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
        else:
            delay = backoff_seconds(retries + 1)
            logger.warning("run %s: %s retries in %.1fs: %s", run.pk, task.name, delay, exc)
            # Raised, not returned: a chord counts a part only when it really ends.
            raise task.retry(countdown=delay, max_retries=max_retries, exc=exc) from None
    except Exception as exc:
        logger.exception("run %s failed in %s", run.pk, task.name)
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
    finally:
        ctx.remove_tmp()
        close_old_connections()


# Waiting on a remote provider (the scan polls `Run.poll_remote`)


def wait_remote(ctx: RunContext, job_id: str, message: str = "") -> bool:
    """Hand the run to a provider job: `running` -> `waiting` with the job id, same attempt."""
    return transition(
        ctx.run,
        RunStatus.WAITING,
        only_from=frozenset({RunStatus.RUNNING}),
        remote_job_id=job_id[:255],
        heartbeat_at=timezone.now(),
        message=message[:255],
    )


def note_waiting(run: Run, message: str) -> bool:
    """Record that the provider answered (its job is still going); refreshes the heartbeat."""
    rows = type(run).objects.filter(pk=run.pk, status=RunStatus.WAITING, attempt=run.attempt)
    return rows.update(heartbeat_at=timezone.now(), message=message[:255]) == 1


def resume_remote(run: Run, signature) -> bool:
    """The provider job is done: `waiting` -> `running` (same attempt), then send `signature`.

    Of two scans polling the same run, only the one that moves it sends the part, after commit
    (the scan polls inside a transaction; a part sent earlier could find the run still waiting).
    If the broker refuses, the run goes back to `waiting` and the next scan tries again.
    """
    moved = transition(
        run,
        RunStatus.RUNNING,
        only_from=frozenset({RunStatus.WAITING}),
        heartbeat_at=timezone.now(),
        message="The provider finished; collecting its result.",
    )
    if not moved:
        return False

    def send() -> None:
        try:
            signature.apply_async()
        except (OperationalError, OSError) as exc:
            logger.warning("run %s: could not resume, the broker refused it: %s", run.pk, exc)
            transition(run, RunStatus.WAITING, only_from=frozenset({RunStatus.RUNNING}))

    transaction.on_commit(send)
    return True


def end_waiting(run: Run, status: RunStatus, **fields) -> bool:
    """End a `waiting` run (the provider failed the job, or the run was cancelled meanwhile)."""
    return transition(run, status, only_from=frozenset({RunStatus.WAITING}), **fields)
