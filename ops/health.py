"""The health report behind `GET /api/health/`, and its per-process cache."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.utils import timezone

from schedules.validation import broken_schedule_names

from .checks import beat_state, broker_error, database_error, ping_workers
from .storage import storage_error

HEALTH_CACHE_SECONDS = 5  # one real check per process per window, however often it is polled
PING_TIMEOUT_SECONDS = 0.5
BROKER_TIMEOUT_SECONDS = 2  # one attempt: a health check must answer fast


def check_health() -> dict[str, Any]:
    """Check everything once; unhealthy if the database or broker is down, degraded if a process
    is missing or the media storage fails its probe (runs cannot finish, the rest still works)."""
    database = database_error() is None
    broker = broker_error(timeout=BROKER_TIMEOUT_SECONDS) is None
    workers = len(ping_workers(PING_TIMEOUT_SECONDS)) if broker else 0
    beat = beat_state().as_json() if database else {"status": "unknown", "last_tick": None}
    broken = broken_schedule_names() if database else []  # enabled schedules beat skips
    storage = storage_error() is None
    if not (database and broker):
        status = "unhealthy"
    elif workers and beat["status"] == "ok" and not broken and storage:
        status = "healthy"
    else:
        status = "degraded"
    return {
        "status": status,
        "database": "ok" if database else "unreachable",
        "broker": "ok" if broker else "unreachable",
        "storage": "ok" if storage else "failing",
        "workers": workers,
        "beat": beat,
        "schedules": {"broken": broken},
        "checked_at": timezone.now().isoformat(),
    }


class HealthCache:
    """The last report, for HEALTH_CACHE_SECONDS. The lock makes concurrent requests wait for one
    check instead of each pinging the workers, so the endpoint cannot be used to load the system."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._checked = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._report is None or time.monotonic() - self._checked >= HEALTH_CACHE_SECONDS:
                self._report = check_health()
                self._checked = time.monotonic()
            return self._report

    def clear(self) -> None:
        with self._lock:
            self._report = None


health_cache = HealthCache()
