"""The maintenance tasks the schedules fire; the work itself is in runs.maintenance.

They run on the `system` queue (the `runs.*` route) with short time limits, and keep their
results in django-celery-results so the admin shows each schedule's last result.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import maintenance

SOFT_LIMIT, HARD_LIMIT = settings.TASK_TIME_LIMITS["system"]
OPTIONS = {"ignore_result": False, "soft_time_limit": SOFT_LIMIT, "time_limit": HARD_LIMIT}


@shared_task(name="runs.check_timeouts", **OPTIONS)
def check_timeouts(stale_after_seconds: float | None = None, timeout_minutes: float = 30) -> dict:
    return maintenance.check_timeouts(
        stale_after_seconds=stale_after_seconds, timeout_minutes=timeout_minutes
    )


@shared_task(name="runs.scan", **OPTIONS)
def scan(
    pending_grace_seconds: float = 10,
    requeue_after_seconds: float = 3600,
    lost_after_seconds: float = 20,
) -> dict:
    return maintenance.scan(
        pending_grace_seconds=pending_grace_seconds,
        requeue_after_seconds=requeue_after_seconds,
        lost_after_seconds=lost_after_seconds,
    )


@shared_task(name="runs.cleanup", **OPTIONS)
def cleanup(
    retention_days: float | None = None, orphan_grace_seconds: float = 3600, max_batches: int = 200
) -> dict:
    return maintenance.cleanup(
        retention_days=retention_days,
        orphan_grace_seconds=orphan_grace_seconds,
        max_batches=max_batches,
    )
