"""Stopping an engine call from another thread: a cancel token the caller hands down.

A run's work is cancelled from outside (the run's cancel flag, seen by the worker's heartbeat
thread). Between steps that is enough; during a long engine call (an ffmpeg render, an eSpeak
synthesis, a provider request) the call itself has to stop. A `CancelToken` is how:

- a subprocess the engine starts is `register`ed, and `cancel()` kills it at once;
- a loop in the engine's own process (eSpeak's synthesis callback, a download's chunks) asks
  `cancelled` or calls `check()` between chunks;
- a blocking call that cannot be interrupted (an HTTP request) runs through `interruptible`, so
  the caller stops waiting at once and the abandoned call ends by its own timeout.

Engines take the token from their `cancel=` argument, or else from `current()`: the one the
caller made active for its thread with `active(token)` (the run wrapper does this around a run's
steps), so the steps and every engine layer between them need not pass it along. No Django here.
"""

from __future__ import annotations

import contextvars
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """The work was cancelled while an engine ran; not an EngineError, so no fallback catches it."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class CancelToken:
    """A one-way switch shared by the thread doing the work and the thread that cancels it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen] = set()
        self._callbacks: list[Callable[[], object]] = []

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        """Raise Cancelled once the token is cancelled."""
        if self.event.is_set():
            raise Cancelled()

    def cancel(self) -> None:
        """Cancel: kill every registered subprocess and run every callback (once)."""
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            processes, self._processes = list(self._processes), set()
            callbacks, self._callbacks = self._callbacks, []
        for process in processes:
            _kill(process)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a closer that fails must not stop the others
                continue

    def register(self, process: subprocess.Popen) -> None:
        """Kill `process` on cancel (at once when the token is cancelled already)."""
        with self._lock:
            if not self.event.is_set():
                self._processes.add(process)
                return
        _kill(process)

    def unregister(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback` on cancel; returns a function that forgets it again."""
        with self._lock:
            if not self.event.is_set():
                self._callbacks.append(callback)

                def forget() -> None:
                    with self._lock, suppress(ValueError):
                        self._callbacks.remove(callback)

                return forget
        callback()
        return lambda: None

    @contextmanager
    def watching(self, process: subprocess.Popen) -> Iterator[subprocess.Popen]:
        """Register `process` for the block; on leaving, raise Cancelled if the token fired."""
        self.register(process)
        try:
            yield process
        finally:
            self.unregister(process)
        self.check()

    def interruptible(self, call: Callable[[], T], *, poll_seconds: float = 0.2) -> T:
        """`call()` in a helper thread; return its result, or raise Cancelled as soon as the
        token fires (the abandoned call finishes, or times out, on its own)."""
        self.check()
        outcome: dict[str, object] = {}
        done = threading.Event()

        def work() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="interruptible-call", daemon=True).start()
        while not done.wait(poll_seconds):
            self.check()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]


class _Never(CancelToken):
    """The token of work nobody can cancel: registering costs nothing."""

    def register(self, process: subprocess.Popen) -> None:
        return None

    def interruptible(self, call: Callable[[], T], *, poll_seconds: float = 0.2) -> T:
        return call()

    def cancel(self) -> None:
        raise RuntimeError("NEVER cannot be cancelled")


NEVER: CancelToken = _Never()
_current: contextvars.ContextVar[CancelToken] = contextvars.ContextVar(
    "engines_cancel_token", default=NEVER
)


def current() -> CancelToken:
    """The token the caller made active for this thread (`active`), or one that never fires."""
    return _current.get()


def token_or_current(token: CancelToken | None) -> CancelToken:
    return token if token is not None else _current.get()


@contextmanager
def active(token: CancelToken) -> Iterator[CancelToken]:
    """Make `token` the one engine calls in this thread use unless given another."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            process.kill()
