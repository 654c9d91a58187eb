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

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Greatest
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
    marked = (
        type(run)
        .objects.filter(pk=run.pk, status__in=only_from)
        .update(status=RunStatus.QUEUED, queued_at=timezone.now(), task_id=task_id)
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
    logger.debug("run %s dispatched as task %s", run.pk, task_id)
    return True


def run_models() -> list[type[Run]]:
    """Every concrete run kind; the apps register nothing."""
    return [model for model in apps.get_models() if issubclass(model, Run)]


BATCH = 500  # rows per relay or maintenance pass: bounded work and short locks


def lock_batch(queryset: QuerySet, limit: int = BATCH) -> list[Run]:
    """Claim rows until commit; a concurrent pass skips them (SKIP LOCKED) instead of waiting."""
    return list(queryset.select_for_update(skip_locked=True).order_by()[:limit])


def mark_queued(model: type[Run], runs: list[Run], *, message: str | None = None) -> dict:
    """Mark runs this transaction holds locked `queued` with fresh task ids, in one UPDATE.

    `dispatch`'s protocol, set-based: send with `send_marked` once the transaction commits.
    """
    task_ids = {run.pk: str(uuid.uuid4()) for run in runs}
    if task_ids:
        fields = {"message": message} if message is not None else {}
        model.objects.filter(pk__in=task_ids).update(
            status=RunStatus.QUEUED,
            queued_at=timezone.now(),
            task_id=Case(*(When(pk=pk, then=Value(tid)) for pk, tid in task_ids.items())),
            **fields,
        )
    return task_ids


def send_marked(model: type[Run], runs: list[Run], task_ids: dict) -> int:
    """Send the marked runs' tasks; at the first refusal the rest go back to `pending` at once,
    so a broker outage costs one connection timeout, not one per run. Returns how many went."""
    for sent, run in enumerate(runs):
        try:
            current_app.send_task(
                run.task_name,
                args=[str(run.pk)],
                task_id=task_ids[run.pk],
                priority=message_priority(run.priority),
            )
        except (OperationalError, OSError) as exc:
            unsent = [task_ids[r.pk] for r in runs[sent:]]
            model.objects.filter(status=RunStatus.QUEUED, task_id__in=unsent).update(
                status=RunStatus.PENDING
            )
            logger.warning("%s run(s) stay pending, the broker refused them: %s", len(unsent), exc)
            return sent
    return len(runs)


def requeue_after_commit(model: type[Run], runs: list[Run], *, message: str | None = None) -> None:
    """Mark locked runs queued now and send them once the surrounding transaction commits."""
    task_ids = mark_queued(model, runs, message=message)
    if task_ids:
        transaction.on_commit(lambda: send_marked(model, runs, task_ids))


def relay_pending(*, older_than_seconds: float = 0) -> int:
    """Dispatch runs left `pending` (the broker was down at submit); returns how many went.

    Of two relays running at once, each claims different rows, so no run is sent twice.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    sent = 0
    for model in run_models():
        with transaction.atomic():
            pending = model.objects.filter(status=RunStatus.PENDING, created_at__lte=cutoff)
            runs = lock_batch(pending)
            task_ids = mark_queued(model, runs)
        sent += send_marked(model, runs, task_ids)
    return sent


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


class Heartbeats:
    """One thread per worker process keeps fresh the heartbeat of every run that process executes.

    A long step (an ffmpeg call) reports no progress for minutes; without this the timeout check
    would take its run for dead. One long-lived thread, not one per run, keeps short runs cheap.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: set[RunContext | BetweenParts] = set()
        self._thread: threading.Thread | None = None

    def track(self, ctx: RunContext | BetweenParts) -> None:
        with self._lock:
            self._contexts.add(ctx)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(
                    target=self._loop, name="run-heartbeats", daemon=True
                )
                self._thread.start()

    def untrack(self, ctx: RunContext | BetweenParts) -> None:
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


# Canvases: one run carried out by several tasks (a chain, a group, a chord)
#
# The first task claims the run (one attempt) and sends the canvas; every part then runs under
# that attempt through `execute_part`. A part of an older attempt, or of a run that already
# ended, does nothing, so a redelivered part, or a part after another one failed, is harmless.


class PartContext(RunContext):
    """A RunContext for one part of a canvas: parts may run in parallel, so progress only rises."""

    def progress_update(self, progress: int):
        return Greatest(F("progress"), Value(progress))

    def progress_after(self, progress: int) -> int:
        return max(self.run.progress, progress)


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
        finish(ctx, RunStatus.TIMED_OUT, message="Stopped: the time limit was reached.")
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
