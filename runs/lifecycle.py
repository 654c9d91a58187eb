"""The run lifecycle, written once: transitions, dispatch, and the wrapper every generation task uses.

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
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.apps import apps
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError

from engines.errors import TransientEngineError

from .models import ACTIVE, TERMINAL, Priority, Run, RunStatus

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


def transition(run: Run, to: RunStatus, *, only_from: frozenset, fenced: bool = True, **fields) -> bool:
    """Move `run` to `to` if it is still in `only_from` (and on the same attempt); True if it moved."""
    rows = type(run).objects.filter(pk=run.pk, status__in=only_from)
    if fenced:
        rows = rows.filter(attempt=run.attempt)
    if to in TERMINAL:
        fields.setdefault("finished_at", timezone.now())
    moved = rows.update(status=to, **fields) == 1
    if moved:
        run.refresh_from_db()
    return moved


# Dispatch (the outbox relay)


def message_priority(priority: str) -> int:
    """Celery message priority: Redis serves 0 first, AMQP serves the highest number first."""
    levels = {Priority.HIGH: 9, Priority.NORMAL: 5, Priority.LOW: 0}
    level = levels.get(priority, 5)
    return 9 - level if current_app.conf.broker_url.startswith("redis") else level


def dispatch(run: Run, *, only_from: frozenset = CLAIMABLE) -> bool:
    """Send the run's task; a run the broker refuses goes back to `pending`. Safe to call again.

    The row is marked `queued` before the message leaves, so a fast worker never finds it
    pending, and of two relays racing over one pending run only the one that marks it sends.
    """
    task_id = str(uuid.uuid4())
    marked = type(run).objects.filter(pk=run.pk, status__in=only_from).update(
        status=RunStatus.QUEUED, queued_at=timezone.now(), task_id=task_id
    )
    if not marked:
        return False
    try:
        current_app.send_task(
            run.task_name,
            args=[str(run.pk)],
            task_id=task_id,
            priority=message_priority(run.priority),
        )
    except (OperationalError, OSError) as exc:
        type(run).objects.filter(pk=run.pk, status=RunStatus.QUEUED, task_id=task_id).update(
            status=RunStatus.PENDING
        )
        logger.warning("run %s stays pending, the broker refused it: %s", run.pk, exc)
        return False
    logger.info("run %s dispatched as task %s", run.pk, task_id)
    return True


def run_models() -> list[type[Run]]:
    """Every concrete run kind; the apps register nothing."""
    return [model for model in apps.get_models() if issubclass(model, Run)]


def relay_pending(*, older_than_seconds: float = 0, limit: int = 500) -> int:
    """Dispatch runs left `pending` (the broker was down at submit); returns how many went."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for model in run_models():
        stuck = model.objects.filter(status=RunStatus.PENDING, created_at__lte=cutoff)
        for run in stuck.order_by("created_at")[:limit]:
            sent += dispatch(run, only_from=frozenset({RunStatus.PENDING}))
    return sent


def dispatch_on_commit(run: Run) -> None:
    transaction.on_commit(lambda: dispatch(run))


def request_cancel(run: Run) -> bool:
    """Set the durable cancel flag; a run not yet running ends now, a running one at its next step."""
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
    run = model.objects.filter(pk=run_id).first()
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
        logger.warning("run %s taken over after a stale heartbeat (attempt %s)", run.pk, run.attempt)
    logger.info("run %s claimed (attempt %s)", run.pk, run.attempt)
    return run


# The task wrapper


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
        moved = self._mine().filter(cancel_requested=False).update(
            progress=progress, stage=stage[:64], message=message[:255], heartbeat_at=timezone.now()
        )
        if moved:
            self.run.progress, self.run.stage = progress, stage
            return
        if self._mine().filter(cancel_requested=True).exists():
            raise RunCancelled()
        raise RunLost()

    def beat(self) -> bool:
        return self._mine().update(heartbeat_at=timezone.now()) == 1

    def remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@contextmanager
def heartbeat(ctx: RunContext) -> Iterator[None]:
    """Keep the run's heartbeat fresh from a thread while a long step (an ffmpeg call) runs."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(settings.RUN_HEARTBEAT_SECONDS):
                if not ctx.beat():
                    return
        except Exception:
            logger.exception("heartbeat for run %s failed", ctx.run.pk)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=loop, name=f"heartbeat-{ctx.run.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def finish(ctx: RunContext, status: RunStatus, **fields) -> bool:
    moved = transition(ctx.run, status, only_from=IN_PROGRESS, **fields)
    if moved:
        logger.info("run %s %s", ctx.run.pk, status)
    return moved


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
    try:
        run = claim(model, run_id)
    except Backoff as busy:
        raise task.retry(countdown=busy.countdown, max_retries=None) from None
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
        finish(ctx, RunStatus.TIMED_OUT, message="Stopped: the time limit was reached.")
    except TransientEngineError as exc:
        retry_later(task, ctx, exc)
    except Exception as exc:
        logger.exception("run %s failed", run.pk)
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
    finally:
        ctx.remove_tmp()
        close_old_connections()


def retry_later(task, ctx: RunContext, exc: Exception) -> None:
    """A transient error: queue the run again after a backoff, or fail it when attempts are spent."""
    run = ctx.run
    if run.attempt >= run.max_attempts:
        finish(ctx, RunStatus.FAILED, message=readable(exc), error=traceback.format_exc())
        return
    delay = backoff_seconds(run.attempt)
    requeued = transition(
        run, RunStatus.QUEUED, only_from=IN_PROGRESS, message=f"Retrying in {delay:.0f}s: {exc}"[:255]
    )
    if requeued:
        logger.warning("run %s: transient error, retry in %.1fs: %s", run.pk, delay, exc)
        task.retry(countdown=delay, max_retries=None, throw=False)


def readable(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:255]
