"""One thread per worker process that keeps the heartbeats of its running runs fresh."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections, connection

from .models import Run

logger = logging.getLogger(__name__)


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
