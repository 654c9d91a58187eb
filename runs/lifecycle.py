"""The run lifecycle, written once: transitions, dispatch, and the wrapper every task uses.

Every status change is one conditional UPDATE fenced by the run's attempt number, so a late,
duplicate or superseded worker changes nothing. The Run row is the outbox: a run is created
`pending`, dispatched after commit, and stays `pending` (for the scan) if the broker refuses.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from engines.errors import TransientEngineError

from . import outbox
from .models import ACTIVE, TERMINAL, Run, RunStatus

logger = logging.getLogger(__name__)

CLAIMABLE = frozenset({RunStatus.PENDING, RunStatus.QUEUED})
IN_PROGRESS = frozenset({RunStatus.RUNNING, RunStatus.WAITING})
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


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
    run: Run, to: RunStatus, *, only_from: frozenset, fenced: bool = True, **fields
) -> bool:
    """Move `run` to `to` if it is still in `only_from` (and on the same attempt); True if moved."""
    rows = type(run).objects.filter(pk=run.pk, status__in=only_from)
    if fenced:
        rows = rows.filter(attempt=run.attempt)
    if to in TERMINAL:
        fields.setdefault("finished_at", timezone.now())
    moved = rows.update(status=to, **fields) == 1
    if moved:
        remember(run, status=to, **fields)
    return moved


def remember(run: Run, **fields) -> None:
    """Copy what an UPDATE wrote onto the instance; re-read only when it used an expression."""
    if any(hasattr(value, "resolve_expression") for value in fields.values()):
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
    return bool(marked) and outbox.send_marked(type(run), [run], {run.pk: task_id}) == 1


def dispatch_on_commit(run: Run) -> None:
    transaction.on_commit(lambda: dispatch(run))


def request_cancel(run: Run) -> bool:
    """Set the durable cancel flag; an unstarted run ends now, a running one at its next step."""
    flagged = type(run).objects.filter(pk=run.pk, status__in=ACTIVE).update(cancel_requested=True)
    if not flagged:
        return False
    transition(
        run,
        RunStatus.CANCELLED,
        only_from=frozenset({RunStatus.PENDING, RunStatus.QUEUED, RunStatus.WAITING}),
        fenced=False,
        message="Cancelled before it finished.",
    )
    run.refresh_from_db()
    return True


def retry(run: Run) -> bool:
    """Send a finished, unsuccessful run round again with a fresh budget of attempts."""
    moved = transition(
        run,
        RunStatus.PENDING,
        only_from=RETRYABLE,
        fenced=False,
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


def claim(model: type[Run], run_id: str) -> Run | None:
    """Take the run for this delivery, or return None when there is nothing to do.

    Raises Backoff when another worker's heartbeat is fresh: it may still be working.
    """
    run = model.objects.filter(pk=run_id).order_by().first()
    if run is None:
        logger.warning("%s %s does not exist; message dropped", model.__name__, run_id)
        return None
    if run.status in TERMINAL or run.status == RunStatus.WAITING:
        logger.info("run %s is %s; delivery ignored", run.pk, run.status)
        return None
    if run.status == RunStatus.RUNNING and not is_stale(run):
        raise Backoff(settings.RUN_STALE_AFTER_SECONDS)
    if run.cancel_requested:
        transition(run, RunStatus.CANCELLED, only_from=CLAIMABLE | IN_PROGRESS)
        return None
    if run.attempt >= run.max_attempts:
        transition(
            run,
            RunStatus.FAILED,
            only_from=CLAIMABLE | IN_PROGRESS,
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


def claim_for(task, model: type[Run], run_id: str) -> Run | None:
    """`claim` for one delivery of `task`: a busy run sends the task round again later."""
    close_old_connections()  # a connection the server dropped is replaced, not failed on
    try:
        return claim(model, run_id)
    except Backoff as busy:
        raise task.retry(countdown=busy.countdown, max_retries=None) from None


class RunContext:
    """What a generation step sees: progress, the cancel check and a private temporary folder."""

    def __init__(self, run: Run):
        self.run = run
        self.attempt = run.attempt
        self._tmp: Path | None = None

    @property
    def tmp_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"run-{self.run.pk}-"))
        return self._tmp

    def _mine(self):
        return type(self.run).objects.filter(
            pk=self.run.pk, status=RunStatus.RUNNING, attempt=self.attempt
        )

    def step(self, progress: int, stage: str, message: str = "") -> None:
        """Record progress between steps; stop here if the run was cancelled or taken over."""
        progress = max(0, min(100, int(progress)))
        moved = (
            self._mine()
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
            return
        if self._mine().filter(cancel_requested=True).exists():
            raise RunCancelled()
        raise RunLost()

    def progress_update(self, progress: int):
        return progress

    def progress_after(self, progress: int) -> int:
        return progress

    def beat(self) -> bool:
        return self._mine().update(heartbeat_at=timezone.now()) == 1

    def remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class Beating(Protocol):
    run: Run

    def beat(self) -> bool: ...


class Heartbeats:
    """One thread per worker process keeps fresh the heartbeat of every run that process executes.

    A long step (an ffmpeg call) reports no progress for minutes; without this the timeout check
    would take its run for dead. One long-lived thread, not one per run, keeps short runs cheap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: set[Beating] = set()
        self._thread: threading.Thread | None = None

    def track(self, ctx: Beating) -> None:
        with self._lock:
            self._contexts.add(ctx)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(
                    target=self._loop, name="run-heartbeats", daemon=True
                )
                self._thread.start()

    def untrack(self, ctx: Beating) -> None:
        with self._lock:
            self._contexts.discard(ctx)

    def _loop(self) -> None:
        while True:
            time.sleep(settings.RUN_HEARTBEAT_SECONDS)
            with self._lock:
                contexts = list(self._contexts)
            if not contexts:
                connection.close()  # this thread's own connection; idle workers hold none
                continue
            close_old_connections()
            for ctx in contexts:
                try:
                    if not ctx.beat():  # the run ended or moved on: nothing left to keep alive
                        self.untrack(ctx)
                except Exception:
                    logger.exception("heartbeat for run %s failed", ctx.run.pk)


heartbeats = Heartbeats()


@contextmanager
def heartbeat(ctx: RunContext) -> Iterator[None]:
    heartbeats.track(ctx)
    try:
        yield
    finally:
        heartbeats.untrack(ctx)


def finish(ctx: RunContext, status: RunStatus, **fields) -> bool:
    moved = transition(ctx.run, status, only_from=IN_PROGRESS, **fields)
    if moved:
        logger.info("run %s %s", ctx.run.pk, status)
    return moved


def time_out(ctx: RunContext) -> bool:
    """End the run `timed_out` after the soft time limit struck."""
    # The limit is a signal: it may have struck in the middle of a query, leaving the connection
    # out of step with the server. A fresh one writes the end reliably.
    connection.close()
    return finish(ctx, RunStatus.TIMED_OUT, message="Stopped: the time limit was reached.")


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: 2, 4, 8 ... s, capped at five minutes."""
    return random.uniform(1, min(300, 2**attempt))


Steps = Callable[[Run, RunContext], object]


def execute(task, model: type[Run], run_id: str, steps: Steps) -> None:
    """Run `steps` for one delivery of a run's task and end the run in exactly one terminal state.

    1. claim the run (or return, or back off when another worker is alive on it);
    2. run the steps with a heartbeat; they report progress through `ctx.step`;
    3. end succeeded, cancelled, timed_out or failed; transient errors retry within the attempts.
    """
    run = claim_for(task, model, run_id)
    if run is None:
        return
    ctx = RunContext(run)
    try:
        with heartbeat(ctx):
            steps(run, ctx)
        if run.status == RunStatus.RUNNING:  # steps that hand off to a provider leave it waiting
            finish(ctx, RunStatus.SUCCEEDED, progress=100, stage="done", message="")
    except RunCancelled:
        finish(ctx, RunStatus.CANCELLED, message="Cancelled.")
    except RunLost:
        logger.warning("run %s was taken over; attempt %s stops", run.pk, ctx.attempt)
    except SoftTimeLimitExceeded:
        time_out(ctx)
    except TransientEngineError as exc:
        retry_later(task, ctx, exc)
    except Exception as exc:
        logger.exception("run %s failed", run.pk)
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
    finally:
        ctx.remove_tmp()
        close_old_connections()


def retry_later(task, ctx: RunContext, exc: Exception) -> None:
    """A transient error: queue the run again after a backoff, or fail it when out of attempts."""
    run = ctx.run
    if run.attempt >= run.max_attempts:
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
        return
    delay = backoff_seconds(run.attempt)
    requeued = transition(
        run,
        RunStatus.QUEUED,
        only_from=IN_PROGRESS,
        message=f"Retrying in {delay:.0f}s: {exc}"[:255],
    )
    if requeued:
        logger.warning("run %s: transient error, retry in %.1fs: %s", run.pk, delay, exc)
        task.retry(countdown=delay, max_retries=None, throw=False)


def readable(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:255]
