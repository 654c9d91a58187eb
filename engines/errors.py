"""Errors raised by engines; the run lifecycle maps them to fail-now or retry-later."""

from __future__ import annotations


class EngineError(Exception):
    """Permanent failure: bad input or unreadable data. Retrying gives the same answer."""


class TransientEngineError(EngineError):
    """Temporary failure: a timeout, a 5xx or a dropped connection. Retry with backoff."""


class EngineConfigError(EngineError):
    """The engines were configured in a way they cannot work with."""
