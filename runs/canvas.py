"""Canvases: one run carried out by several tasks (a chain, a group, a chord).

The first task claims the run (one attempt) and sends the canvas; every part then runs under
that attempt through `execute_part`. A part of an older attempt, or of a run that already
ended, does nothing, so a redelivered part, or a part after another one failed, is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from kombu.exceptions import OperationalError

from engines.errors import TransientEngineError

from . import lifecycle
from .lifecycle import R, RunContext, Steps, transition
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
        self.rows = ctx.rows().filter(stage=ctx.run.stage)
        self.until = time.monotonic() + settings.RUN_PART_GAP_SECONDS

    def beat(self) -> bool:
        if time.monotonic() > self.until:
            return False
        return self.rows.update(heartbeat_at=timezone.now()) == 1


def start_canvas(task, model: type[R], run_id: str, build: Callable[[R], object]) -> None:
    """Claim the run for this delivery and send the canvas `build(run)` returns; its parts end it.

    The run stays `running` once the canvas is sent; the last part marks it succeeded.
    """
    with lifecycle.keeping_the_message(task):
        run = lifecycle.claim_for(task, model, run_id)
        if run is None:
            return
        ctx = RunContext(run)
        with lifecycle.ending(ctx, on_transient=lambda exc: lifecycle.retry_later(task, ctx, exc)):
            canvas = build(run)
            try:
                canvas.apply_async()  # type: ignore[attr-defined]
            except (OperationalError, OSError) as exc:
                raise TransientEngineError(f"the broker refused the canvas: {exc}") from exc
            logger.info("run %s canvas sent (attempt %s)", run.pk, run.attempt)


def execute_part(
    task,
    model: type[R],
    run_id: str,
    attempt: int,
    part: Steps[R],
    *,
    last: bool = False,
    max_retries: int = 3,
) -> None:
    """Run one part of a run's canvas under the attempt that sent it.

    1. skip quietly unless the run is `running` on `attempt` (a redelivery, a part after a
       failure or cancel, or a part of an attempt that was taken over);
    2. stop the run as cancelled if its cancel flag is set (the parts not yet started);
    3. run the part with a heartbeat; the `last` part ends the run succeeded;
    4. a failure fails the run (once however many parts fail, through `lifecycle.ending`);
       a transient error retries this part, not the whole canvas.
    """
    with lifecycle.keeping_the_message(task):
        close_old_connections()
        run = model.objects.filter(pk=run_id, attempt=attempt, status=RunStatus.RUNNING).first()
        if run is None:
            logger.info("%s: run %s not running on attempt %s; skipped", task.name, run_id, attempt)
            return
        carry_out_part(task, PartContext(run), part, last=last, max_retries=max_retries)


def carry_out_part(task, ctx: PartContext, part: Steps, *, last: bool, max_retries: int) -> None:
    run = ctx.run

    def retry_part(exc: Exception) -> None:
        retries = task.request.retries or 0
        if retries >= max_retries:
            lifecycle.fail(ctx, exc)
            return
        delay = lifecycle.backoff_seconds(retries + 1)
        logger.warning("run %s: %s retries in %.1fs: %s", run.pk, task.name, delay, exc)
        # Raised, not returned: a chord counts a part only when it really ends.
        raise task.retry(countdown=delay, max_retries=max_retries, exc=exc) from None

    with lifecycle.ending(ctx, on_transient=retry_part):
        if run.cancel_requested:
            raise lifecycle.RunCancelled()
        with lifecycle.heartbeat(ctx):
            part(run, ctx)
        if last and run.status == RunStatus.RUNNING:  # a hand-off to a provider leaves it waiting
            lifecycle.succeed(ctx)
        elif run.status == RunStatus.RUNNING:
            lifecycle.heartbeats.track(BetweenParts(ctx))


# Waiting on a remote provider (the scan polls `Run.poll_remote`)


def wait_remote(ctx: RunContext, job_id: str, message: str = "") -> bool:
    """Hand the run to a provider job: `running` -> `waiting` with the job id, same attempt."""
    return transition(
        ctx.run,
        RunStatus.WAITING,
        only_from=frozenset({RunStatus.RUNNING}),
        reason="handed to the provider",
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
        reason="the provider finished",
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
            transition(
                run,
                RunStatus.WAITING,
                only_from=frozenset({RunStatus.RUNNING}),
                reason="the broker refused the resume",
            )

    transaction.on_commit(send)
    return True


def end_waiting(run: Run, status: RunStatus, **fields) -> bool:
    """End a `waiting` run (the provider failed the job, or the run was cancelled meanwhile)."""
    return transition(run, status, only_from=frozenset({RunStatus.WAITING}), **fields)
