"""The checks behind `/api/health/`, `/api/metrics` and `run_celery.py status`, written once.

The Celery app is `current_app`: the project's (web/celery.py), which importing web.settings
creates; ops reads the project package through Django and Celery, never by importing it.

Each check answers, never raises for the outage it looks for: a service that is down is a
result here, and the caller decides what it means (an HTTP 503, an exit code, a sentence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count
from django.utils import timezone
from kombu.exceptions import OperationalError

from runs.models import run_models
from schedules.beat import last_tick

logger = logging.getLogger(__name__)


def database_error() -> str | None:
    """None if the database answers a query, else the first line of why not."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("database unreachable: %s", exc)
        return first_line(exc)
    return None


def broker_error(*, timeout: float, retries: int = 0) -> str | None:
    """None if the broker accepts a connection within `timeout` seconds (and `retries` more
    attempts), else why not."""
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=retries, timeout=timeout)
    except (OperationalError, OSError) as exc:
        logger.warning("broker unreachable: %s", exc)
        return first_line(exc)
    return None


def ping_workers(timeout: float) -> list[str]:
    """The node names of the workers that answer a ping within `timeout`; none if the broker
    is gone."""
    try:
        replies = current_app.control.ping(timeout=timeout) or []
    except (OperationalError, OSError) as exc:
        logger.warning("could not ping the workers: %s", exc)
        return []
    return sorted(name for reply in replies for name in reply)


def worker_queues(timeout: float) -> dict[str, list[str]]:
    """{node name: the queues it consumes} for every worker that answers within `timeout` (one
    broadcast, like a ping); empty if the broker is gone."""
    try:
        replies = current_app.control.inspect(timeout=timeout).active_queues() or {}
    except (OperationalError, OSError) as exc:
        logger.warning("could not ask the workers for their queues: %s", exc)
        return {}
    return {node: sorted(q["name"] for q in queues or []) for node, queues in replies.items()}


@dataclass(frozen=True)
class BeatState:
    """`ok` if the leading beat ticked within beat_stale_after() seconds, else `stale`, or
    `never` if no beat ever led."""

    status: Literal["ok", "stale", "never"]
    last_tick: datetime | None
    age_seconds: float | None

    def as_json(self) -> dict[str, str | None]:
        tick = self.last_tick.isoformat() if self.last_tick else None
        return {"status": self.status, "last_tick": tick}


def beat_stale_after() -> float:
    """Beat ticks at least every max loop interval; three missed ticks means it is not ticking."""
    return 3 * settings.CELERY_BEAT_MAX_LOOP_INTERVAL + 5


def beat_state() -> BeatState:
    tick = last_tick()
    if tick is None:
        return BeatState("never", None, None)
    age = (timezone.now() - tick).total_seconds()
    return BeatState("ok" if age < beat_stale_after() else "stale", tick, age)


def runs_by_status() -> dict[str, dict[str, int]]:
    """{run kind ("podcast.podcastrun"): {status: count}} over every run table, one query each."""
    counts = {}
    for model in run_models():
        rows = model.objects.order_by().values_list("status").annotate(n=Count("pk"))
        counts[model._meta.label_lower] = dict(rows)
    return counts


def first_line(exc: BaseException) -> str:
    """An exception as one clause: its first line without the closing full stop."""
    return (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(".")
