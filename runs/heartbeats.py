"""One thread per worker process that keeps the heartbeats of its running runs fresh and stops
the work of runs cancelled meanwhile."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.db import close_old_connections, connection

from .models import Run

logger = logging.getLogger(__name__)


class Beating(Protocol):
    run: Run

    def beat(self) -> bool: ...


@runtime_checkable
class Cancellable(Protocol):
    run: Run

    def cancel(self) -> None: ...


def cancel_check_seconds() -> float:
    """How often the thread looks at the cancel flags of the runs it keeps (1 s by default)."""
    return settings.RUN_CANCEL_CHECK_SECONDS


class Heartbeats:
    """One thread per worker process keeps fresh the heartbeat of every run that process executes.

    A long step (an ffmpeg call) reports no progress for minutes; without this the timeout check
    would take its run for dead. One long-lived thread, not one per run, keeps short runs cheap.

    The same thread looks at the cancel flags of those runs every `cancel_check_seconds()` (one
    query per run model for all of them) and cancels the context of a run whose flag is set, which
    kills its engine call at once (`RunContext.cancel`), so a cancel never waits for the next step.
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
        next_beat = time.monotonic() + settings.RUN_HEARTBEAT_SECONDS
        while True:
            time.sleep(min(cancel_check_seconds(), settings.RUN_HEARTBEAT_SECONDS))
            try:  # the thread outlives any one error (a database away): it is every run's pulse
                next_beat = self._tick(next_beat)
            except Exception:
                logger.exception("heartbeat pass failed; the next one tries again")

    def _tick(self, next_beat: float) -> float:
        """One pass: cancel checks always, heartbeats once `next_beat` has come; the next one."""
        with self._lock:
            contexts = list(self._contexts)
        if not contexts:
            connection.close()  # this thread's own connection; idle workers hold none
            return next_beat
        close_old_connections()
        self._stop_cancelled(contexts)
        if time.monotonic() < next_beat:
            return next_beat
        for ctx in contexts:
            try:
                if not ctx.beat():  # the run ended or moved on: nothing left to keep alive
                    self.untrack(ctx)
            except Exception:
                logger.exception("heartbeat for run %s failed", ctx.run.pk)
        return time.monotonic() + settings.RUN_HEARTBEAT_SECONDS

    def _stop_cancelled(self, contexts: list[Beating]) -> None:
        """Cancel the contexts whose run's cancel flag is set: one query per run model."""
        by_model: dict[type[Run], list[Cancellable]] = defaultdict(list)
        for ctx in contexts:
            if isinstance(ctx, Cancellable):  # a RunContext; not what keeps a canvas between parts
                by_model[type(ctx.run)].append(ctx)
        for model, cancellable in by_model.items():
            try:
                flagged = set(
                    model._default_manager.filter(
                        pk__in={ctx.run.pk for ctx in cancellable}, cancel_requested=True
                    ).values_list("pk", flat=True)
                )
            except Exception:
                logger.exception("cancel check for %s runs failed", model.__name__)
                continue
            for each in cancellable:
                if each.run.pk in flagged:
                    each.cancel()  # once; it keeps beating until its work has stopped


heartbeats = Heartbeats()
