"""The three maintenance schedules, created in the database only when missing.

Not CELERY_BEAT_SCHEDULE: beat copies that over the database at every start, which would undo an
operator's edits in the admin. Here an existing row (found by its unique name) is never touched.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from . import audit


def defaults() -> dict[str, dict]:
    """DESIGN.md's defaults; timeouts, staleness and retention are kwargs the admin can edit."""
    return {
        "check timeouts": {
            "task": "runs.check_timeouts",
            "every_seconds": 300,
            "kwargs": {
                "timeout_minutes": 30,
                "stale_after_seconds": settings.RUN_STALE_AFTER_SECONDS,
            },
            "description": "Re-dispatch runs whose worker died; end runs past their timeout.",
        },
        "scan async runs": {
            "task": "runs.scan",
            "every_seconds": 15,
            "kwargs": {"pending_grace_seconds": 10, "requeue_after_seconds": 3600},
            "description": "Dispatch pending runs, poll provider jobs, re-send lost messages.",
        },
        "clean up": {
            "task": "runs.cleanup",
            "crontab": {"minute": "0", "hour": "2"},
            "kwargs": {"retention_days": settings.RUN_RETENTION_DAYS},
            "description": "Delete old runs, results and artifact files; expired Celery results.",
        },
    }


def sync_schedules() -> list[str]:
    """Create each default schedule that is missing; return the names created."""
    existing = set(PeriodicTask.objects.values_list("name", flat=True))
    created = []
    with audit.acting_as(None, "sync_schedules"):
        for name, spec in defaults().items():
            if name not in existing:
                create_schedule(name, spec)
                created.append(name)
    return created


@transaction.atomic
def create_schedule(name: str, spec: dict) -> PeriodicTask:
    timing = {}
    if "every_seconds" in spec:
        timing["interval"] = first_or_create(
            IntervalSchedule, every=spec["every_seconds"], period=IntervalSchedule.SECONDS
        )
    else:
        timing["crontab"] = first_or_create(
            CrontabSchedule,
            timezone=settings.TIME_ZONE,
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            **spec["crontab"],
        )
    task, _ = PeriodicTask.objects.get_or_create(
        name=name,
        defaults={
            "task": spec["task"],
            "kwargs": json.dumps(spec["kwargs"]),
            "description": spec["description"],
            **timing,
        },
    )
    return task


def first_or_create(model, **values):
    """The first schedule row with these values, or a new one (beat's tables allow duplicates)."""
    return model.objects.filter(**values).order_by("pk").first() or model.objects.create(**values)


def schedule_zone(task: PeriodicTask) -> ZoneInfo:
    """A crontab's own time zone, else the project's (the one beat reads intervals in)."""
    if task.crontab_id:
        return ZoneInfo(str(task.crontab.timezone))
    return ZoneInfo(settings.TIME_ZONE)


def next_run_times(task: PeriodicTask, count: int = 3) -> list[datetime]:
    """The next firings of an enabled interval or crontab task, in the schedule's time zone."""
    if not task.enabled or not (task.interval_id or task.crontab_id):
        return []
    zone = schedule_zone(task)
    now = timezone.now().astimezone(zone)
    if task.interval_id:
        every = timedelta(seconds=task.interval.schedule.run_every.total_seconds())
        first = max((task.last_run_at or now) + every, now)
        return [(first + i * every).astimezone(zone) for i in range(count)]
    times, cursor = [], max(task.last_run_at or now, now)
    for _ in range(count):
        start, delta, _ = task.crontab.schedule.remaining_delta(cursor.astimezone(zone))
        cursor = (start + delta).astimezone(zone)
        times.append(cursor)
    return times
