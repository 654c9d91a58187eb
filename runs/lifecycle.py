"""The run lifecycle, written once: transitions, dispatch, and the wrapper every task uses.

Every status change is one conditional UPDATE fenced by the run's attempt number, so a late,
duplicate or superseded worker changes nothing. The Run row is the outbox: a run is created
`pending`, dispatched after commit, and stays `pending` (for the scan) if the broker refuses.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from engines.cancel import CancelToken, active
from engines.errors import TransientEngineError

from . import outbox, signals, statements
from .heartbeats import heartbeats
from .models import (
    ACTIVE,
    CLAIMABLE,
    IN_PROGRESS,
    RETRYABLE,
    TERMINAL,
    Run,
    RunQuerySet,
    RunStatus,
)

logger = logging.getLogger(__name__)


# A database that went away or a dropped connection: worth another try, never a failed run.
DATABASE_ERRORS = statements.DATABASE_ERRORS


class RunCancelled(Exception):
    """The run's cancel flag was set; raised between steps."""


class RunLost(Exception):
    """Another attempt or the timeout check took the run over; this worker must stop quietly."""


class Backoff(Exception):
    """A second delivery found the run still alive elsewhere; try again later."""

    def __init__(self, countdown: float):
        super().__init__(f"run busy elsewhere, retry in {countdown:.0f}s")
        self.countdown = countdown


def transition(
    run: Run,
    to: RunStatus,
    *,
    only_from: frozenset,
    fenced: bool = True,
    reason: str = "",
    **fields,
) -> bool:
    """Move `run` to `to` if it is still in `only_from` (and on the same attempt); True if moved.

    `reason` says why, for the run's history ("worker lost", "cancelled by user"...)."""
    if to in TERMINAL:
        fields.setdefault("finished_at", timezone.now())
    # One commit for the change and what the receivers write with it (its history row): no
    # history is lost between the two, and the hot path pays one commit, not two.
    with transaction.atomic(savepoint=False):
        moved = move(run, {"status": to, **fields}, only_from=only_from, fenced=fenced) == 1
        if moved:
            before = next(iter(only_from)) if len(only_from) == 1 else run.status
            signals.changed(type(run), [run], to, reason=reason, from_status=before, **fields)
    if moved:
        remember(run, status=to, **fields)
    return moved


def move(run: Run, values: dict[str, Any], *, only_from: frozenset, fenced: bool) -> int:
    """The transition's conditional UPDATE; the number of rows it changed (0 or 1)."""
    attempt = run.attempt if fenced else None
    if not has_expression(values):
        return statements.update(type(run), run.pk, values, only_from=only_from, attempt=attempt)
    rows = type(run).objects.filter(pk=run.pk, status__in=only_from)  # an F() expression
    if fenced:
        rows = rows.filter(attempt=run.attempt)
    return rows.update(**values)


def has_expression(values: dict[str, Any]) -> bool:
    """Whether an UPDATE's values hold an expression (`F("attempt") + 1`), not plain values."""
    return any(hasattr(value, "resolve_expression") for value in values.values())


def remember(run: Run, **fields) -> None:
    """Copy what an UPDATE wrote onto the instance; re-read only when it used an expression."""
    if has_expression(fields):
        run.refresh_from_db()
        return
    for name, value in fields.items():
        setattr(run, name, value)


# Dispatch (the row is the outbox; runs.outbox relays what the broker refused)


def dispatch(run: Run, *, only_from: frozenset = CLAIMABLE) -> bool:
    """Send the run's task; a run the broker refuses goes back to `pending`. Safe to call again.

    The row is marked `queued` before the message leaves, so a fast worker never finds it
    pending, and of two relays racing over one pending run only the one that marks it sends.
    """
    task_id = str(uuid.uuid4())
    marked = (
        type(run)
        .objects.filter(pk=run.pk, status__in=only_from)
        .update(status=RunStatus.QUEUED, queued_at=timezone.now(), task_id=task_id)
    )
    if not marked:
        return False
    signals.changed(type(run), [run], RunStatus.QUEUED, reason="dispatched")
    return outbox.send_marked(type(run), [run], {run.pk: task_id}) == 1


def dispatch_on_commit(run: Run) -> None:
    transaction.on_commit(lambda: dispatch(run))


def queued_on_insert() -> dict[str, Any]:
    """Fields that create a run already `queued` (the submit path: one INSERT, no UPDATE after).

    Its message leaves after commit (`send_on_commit`); should the process die in between, the
    run is queued with no message, and the scan's lost-message check sends it again within
    `lost_after_seconds` plus one scan interval, as for any message the broker lost.
    """
    return {"status": RunStatus.QUEUED, "queued_at": timezone.now(), "task_id": str(uuid.uuid4())}


def send_on_commit(run: Run) -> None:
    """Record the run's dispatch in this transaction and send its message once it commits; a
    refused message leaves the run `pending` for the outbox relay, as `dispatch` does."""
    signals.changed(
        type(run), [run], RunStatus.QUEUED, from_status=RunStatus.PENDING, reason="dispatched"
    )

    def send() -> None:
        if outbox.send_marked(type(run), [run], {run.pk: run.task_id}) == 0:
            run.status = RunStatus.PENDING

    transaction.on_commit(send)


def request_cancel(run: Run, *, by: str = "user") -> bool:
    """Set the durable cancel flag; an unstarted run ends now, a running one within a second or
    two: its worker's heartbeat thread sees the flag and stops the engine call (`RunContext`)."""
    flagged = type(run).objects.filter(pk=run.pk, status__in=ACTIVE).update(cancel_requested=True)
    if not flagged:
        return False
    transition(
        run,
        RunStatus.CANCELLED,
        only_from=frozenset(
            {RunStatus.SCHEDULED, RunStatus.PENDING, RunStatus.QUEUED, RunStatus.WAITING}
        ),
        fenced=False,
        reason=f"cancelled by {by}",
        message="Cancelled before it finished.",
    )
    run.refresh_from_db()
    return True


def retry(run: Run, *, by: str = "user") -> bool:
    """Send a finished, unsuccessful run round again with a fresh budget of attempts."""
    moved = transition(
        run,
        RunStatus.PENDING,
        only_from=RETRYABLE,
        fenced=False,
        reason=f"retried by {by}",
        max_attempts=F("attempt") + settings.RUN_MAX_ATTEMPTS,
        cancel_requested=False,
        progress=0,
        stage="",
        message="Retry requested.",
        error="",
        remote_job_id="",
        started_at=None,
        heartbeat_at=None,
        finished_at=None,
    )
    if moved:
        dispatch_on_commit(run)
    return moved


# Claiming


def is_stale(run: Run) -> bool:
    limit = timezone.now() - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    return run.heartbeat_at is None or run.heartbeat_at < limit


def claim(model: type[R], run_id: str) -> R | None:
    """Take the run for this delivery, or return None when there is nothing to do.

    Raises Backoff when another worker's heartbeat is fresh: it may still be working.
    """
    run = statements.first_read(lambda: statements.read(model, run_id))
    if run is None:
        logger.warning("%s %s does not exist; message dropped", model.__name__, run_id)
        return None
    if run.status in TERMINAL or run.status == RunStatus.WAITING:
        logger.info("run %s is %s; delivery ignored", run.pk, run.status)
        return None
    if run.status == RunStatus.RUNNING and not is_stale(run):
        raise Backoff(settings.RUN_STALE_AFTER_SECONDS)
    if run.cancel_requested:
        transition(run, RunStatus.CANCELLED, only_from=CLAIMABLE | IN_PROGRESS, reason="cancelled")
        return None
    if run.attempt >= run.max_attempts:
        transition(
            run,
            RunStatus.FAILED,
            only_from=CLAIMABLE | IN_PROGRESS,
            reason="attempts spent",
            message=f"Gave up after {run.attempt} attempts.",
            error=run.error or "No attempt finished; the worker was lost each time.",
        )
        return None
    now = timezone.now()
    previous = run.status
    claimed = transition(
        run,
        RunStatus.RUNNING,
        only_from=frozenset({run.status}),
        reason="worker lost; taken over" if run.status == RunStatus.RUNNING else "claimed",
        attempt=run.attempt + 1,
        started_at=now,
        heartbeat_at=now,
        stage="starting",
        message="",
    )
    if not claimed:
        logger.info("run %s was claimed by someone else", run_id)
        return None
    if previous == RunStatus.RUNNING:
        logger.warning(
            "run %s taken over after a stale heartbeat (attempt %s)", run.pk, run.attempt
        )
    logger.debug("run %s claimed (attempt %s)", run.pk, run.attempt)
    return run


# The task wrapper


@contextmanager
def keeping_the_message(task) -> Iterator[None]:
    """A database that is away while a delivery claims or ends its run must not cost the message
    (Celery acknowledges a task that fails): the delivery is sent round again after a backoff,
    and finds the run where the fault left it. A run left `running` goes stale and is taken over.
    """
    try:
        yield
    except DATABASE_ERRORS as exc:
        with suppress(*DATABASE_ERRORS):
            connection.close()  # the next delivery opens a fresh one
        delay = min(30.0, backoff_seconds((task.request.retries or 0) + 1))
        logger.warning("database error, delivery sent again in %.1fs: %s", delay, exc)
        raise task.retry(countdown=delay, max_retries=None, exc=exc) from None


def claim_for(task, model: type[R], run_id: str) -> R | None:
    """`claim` for one delivery of `task`: a busy run sends the task round again later."""
    # One past CONN_MAX_AGE, or left unusable by an error, is closed; a dropped one is replaced
    # by the claim's first read (`statements.first_read`), not found by a ping.
    close_old_connections()
    try:
        return claim(model, run_id)
    except Backoff as busy:
        raise task.retry(countdown=busy.countdown, max_retries=None) from None


class RunContext:
    """What a generation step sees: progress, the cancel check and a private temporary folder.

    `cancel_token` (an `engines.cancel.CancelToken`) stops the engine call in progress when the
    run is cancelled: the worker's heartbeat thread sees the flag within a second or two and
    calls `cancel()`, which kills the subprocess the engine registered (ffmpeg, espeak-ng) and
    stops in-process loops (eSpeak's synthesis, a download). The run wrapper makes the token
    the active one around the steps (`heartbeat`), so engines find it without being handed it.
    """

    def __init__(self, run: Run):
        self.run = run
        self.attempt = run.attempt
        self._tmp: Path | None = None
        self.cancel_token = CancelToken()

    @property
    def cancelled(self) -> threading.Event:
        """Set once the run's cancel flag was seen while this attempt works on it."""
        return self.cancel_token.event

    def cancel(self) -> None:
        """Stop the work now (called from the heartbeat thread when the cancel flag is set)."""
        if not self.cancel_token.cancelled:
            logger.info("run %s: cancel requested, stopping its engine call", self.run.pk)
            self.cancel_token.cancel()

    @property
    def tmp_dir(self) -> Path:
        """This attempt's private working folder, on this machine only (RUN_TMP_DIR, else the
        system's): made on first use, removed when the attempt (or canvas part) ends. What must
        outlive it is saved to the storage (`runs.artifacts`)."""
        if self._tmp is None:
            if settings.RUN_TMP_DIR:
                Path(settings.RUN_TMP_DIR).mkdir(parents=True, exist_ok=True)
            prefix = f"run-{self.run.pk}-a{self.attempt}-"
            self._tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=settings.RUN_TMP_DIR))
        return self._tmp

    def rows(self) -> RunQuerySet:
        """This run's row, while it is running on this attempt (what every write is fenced by)."""
        return type(self.run).objects.filter(
            pk=self.run.pk, status=RunStatus.RUNNING, attempt=self.attempt
        )

    def step(self, progress: int, stage: str, message: str = "") -> None:
        """Record progress between steps; stop here if the run was cancelled or taken over."""
        if self.cancel_token.cancelled:
            raise RunCancelled()
        progress = max(0, min(100, int(progress)))
        moved = (
            self.rows()
            .filter(cancel_requested=False)
            .update(
                progress=self.progress_update(progress),
                stage=stage[:64],
                message=message[:255],
                heartbeat_at=timezone.now(),
            )
        )
        if moved:
            self.run.progress, self.run.stage = self.progress_after(progress), stage
            self.run.message = message[:255]
            signals.run_progressed.send(sender=type(self.run), run=self.run)
            return
        if self.rows().filter(cancel_requested=True).exists():
            raise RunCancelled()
        raise RunLost()

    def progress_update(self, progress: int):
        return progress

    def progress_after(self, progress: int) -> int:
        return progress

    def beat(self) -> bool:
        return self.rows().update(heartbeat_at=timezone.now()) == 1

    def complete(self, save: Callable[[], object]) -> None:
        """Save the run's result and end it succeeded in one transaction, fenced by the attempt.

        A killed or superseded attempt commits neither, so no result outlives its attempt and a
        run never has two. Raises RunLost when the run is no longer this attempt's.
        """
        with transaction.atomic():
            flags = list(self.rows().select_for_update().values_list("cancel_requested", flat=True))
            if not flags:
                raise RunLost()
            if flags[0] or self.cancel_token.cancelled:
                raise RunCancelled()
            save()
            succeed(self)

    def once(self, name: str, produce: Callable[[], Any]) -> Any:
        """`produce()` once per run, for work that costs (a paid provider call).

        Its result, as JSON, is recorded on the run under `name` (fenced by the attempt), so a
        later attempt gets it back instead of paying again. Every attempt sees the JSON form.
        """
        if name in self.run.checkpoints:
            return self.run.checkpoints[name]
        value = json.loads(json.dumps(produce()))
        with transaction.atomic():
            recorded = self.rows().select_for_update().values_list("checkpoints", flat=True)
            if not recorded:
                raise RunLost()
            checkpoints = {**recorded[0], name: value}
            self.rows().update(checkpoints=checkpoints)
        self.run.checkpoints = checkpoints
        return value

    def remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@contextmanager
def heartbeat(ctx: RunContext) -> Iterator[None]:
    """Keep the run's heartbeat fresh and watch its cancel flag while the block works on it.

    The run's cancel token is the active one in the block, so the engine calls stop when it
    fires; whatever the block raises then (the engine's `Cancelled`, or an error of a killed
    ffmpeg) ends the run cancelled.
    """
    heartbeats.track(ctx)
    try:
        with active(ctx.cancel_token):
            yield
    except (RunCancelled, RunLost):
        raise
    except Exception as exc:
        if ctx.cancel_token.cancelled:
            raise RunCancelled() from exc
        raise
    finally:
        heartbeats.untrack(ctx)


def finish(ctx: RunContext, status: RunStatus, **fields) -> bool:
    moved = transition(ctx.run, status, only_from=IN_PROGRESS, **fields)
    if moved:
        # Success is the common case, and Celery logs the task's own success next to it: a line
        # of its own only when debugging. Other endings stay in the log at INFO.
        level = logging.DEBUG if status == RunStatus.SUCCEEDED else logging.INFO
        logger.log(level, "run %s %s", ctx.run.pk, status)
    return moved


def succeed(ctx: RunContext) -> bool:
    return finish(ctx, RunStatus.SUCCEEDED, progress=100, stage="done", message="")


def fail(ctx: RunContext, exc: BaseException) -> bool:
    return finish(
        ctx,
        RunStatus.FAILED,
        reason=f"failed: {type(exc).__name__}",
        message=readable(exc),
        error=traceback.format_exc(),
    )


def end_timed_out(ctx: RunContext) -> bool:
    """End the run `timed_out` after the soft time limit struck."""
    # The limit is a signal: it may have struck in the middle of a query, leaving the connection
    # out of step with the server. A fresh one writes the end reliably.
    connection.close()
    return finish(
        ctx,
        RunStatus.TIMED_OUT,
        reason="timed out",
        message="Stopped: the time limit was reached.",
    )


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: 2, 4, 8 ... s, capped at five minutes."""
    return random.uniform(1, min(300, 2**attempt))


@contextmanager
def ending(ctx: RunContext, *, on_transient: Callable[[Exception], None]) -> Iterator[None]:
    """The one way a piece of a run's work ends, for whole runs and canvas parts alike.

    Whatever the block raises becomes exactly one outcome: cancelled, timed_out or failed (a
    conditional UPDATE, so once however many parts fail), nothing when the attempt was taken
    over, or `on_transient` for an error worth retrying (a provider's timeout or 5xx, a database
    that went away). The temporary folder goes either way, before the outcome is written: once
    a run shows it ended, nothing of that attempt is left on the worker's disk. A database error
    while ending escapes to `keeping_the_message`.
    """
    try:
        try:
            yield
        finally:
            ctx.remove_tmp()
    except RunCancelled:
        finish(ctx, RunStatus.CANCELLED, reason="cancelled", message="Cancelled.")
    except RunLost:
        logger.warning("run %s was taken over; attempt %s stops", ctx.run.pk, ctx.attempt)
    except SoftTimeLimitExceeded:
        end_timed_out(ctx)
    except (TransientEngineError, *DATABASE_ERRORS) as exc:
        on_transient(exc)
    except Exception as exc:
        logger.exception("run %s failed", ctx.run.pk)
        fail(ctx, exc)
    finally:
        close_old_connections()


R = TypeVar("R", bound=Run)
Steps = Callable[[R, RunContext], object]


def execute(task, model: type[R], run_id: str, steps: Steps[R]) -> None:
    """Run `steps` for one delivery of a run's task and end the run in exactly one terminal state.

    1. claim the run (or return, or back off when another worker is alive on it);
    2. run the steps with a heartbeat; they report progress through `ctx.step`;
    3. end succeeded, cancelled, timed_out or failed; transient errors retry within the attempts.
    """
    with keeping_the_message(task):
        run = claim_for(task, model, run_id)
        if run is None:
            return
        ctx = RunContext(run)
        with ending(ctx, on_transient=lambda exc: retry_later(task, ctx, exc)):
            with heartbeat(ctx):
                steps(run, ctx)
            if run.status == RunStatus.RUNNING:  # steps that end it with ctx.complete, or hand
                succeed(ctx)  # it to a provider (waiting), leave nothing to do here


def retry_later(task, ctx: RunContext, exc: Exception) -> None:
    """A transient error: queue the run again after a backoff, or fail it when out of attempts."""
    run = ctx.run
    if run.attempt >= run.max_attempts:
        fail(ctx, exc)
        return
    delay = backoff_seconds(run.attempt)
    requeued = transition(
        run,
        RunStatus.QUEUED,
        only_from=IN_PROGRESS,
        reason=f"transient error: {type(exc).__name__}",
        message=f"Retrying in {delay:.0f}s: {exc}"[:255],
    )
    if requeued:
        logger.warning("run %s: transient error, retry in %.1fs: %s", run.pk, delay, exc)
        task.retry(countdown=delay, max_retries=None, throw=False)


def readable(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:255]
