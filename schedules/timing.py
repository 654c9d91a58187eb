"""When a periodic task fires next, in the time zone beat reads its schedule in.

A task beat cannot fire (validation.task_problem) has no next run: `next_run_times` raises
InvalidSchedule, and `next_run_text` says "invalid: <reason>" for the lists.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from . import validation
from .validation import InvalidSchedule


def schedule_zone(task: PeriodicTask) -> ZoneInfo:
    """A crontab's own time zone, else the project's (the one beat reads intervals in)."""
    return ZoneInfo(validation.zone_name(task))


def next_run_times(task: PeriodicTask, count: int = 3) -> list[datetime]:
    """The next firings of an enabled interval or crontab task, in the schedule's time zone.

    Raises InvalidSchedule for a task beat would skip; never loops and never overflows.
    """
    if not task.enabled or not (task.interval_id or task.crontab_id):
        return []
    if (problem := validation.task_problem(task)) is not None:
        raise InvalidSchedule({"schedule": problem})
    try:
        return _next_run_times(task, count)
    except (ArithmeticError, ValueError, TypeError) as exc:  # e.g. a last_run_at near year 9999
        raise InvalidSchedule({"schedule": validation.message_of(exc)}) from exc


def _next_run_times(task: PeriodicTask, count: int) -> list[datetime]:
    zone = schedule_zone(task)
    now = timezone.now().astimezone(zone)
    if task.interval_id:
        assert task.interval is not None
        every = validation.interval_length(task.interval.every, task.interval.period)
        first = max((task.last_run_at or now) + every, now)
        return [(first + i * every).astimezone(zone) for i in range(count)]
    schedule = validation.crontab_schedule(validation.crontab_values(task))
    times, cursor = [], max(task.last_run_at or now, now)
    for _ in range(count):
        start, delta, _ = schedule.remaining_delta(cursor.astimezone(zone))
        cursor = (start + delta).astimezone(zone)
        times.append(cursor)
    return times


def next_run_text(task: PeriodicTask, count: int = 1, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    """The next run times as text for the lists: "—" if none, "invalid: <reason>" if broken."""
    try:
        times = next_run_times(task, count)
    except InvalidSchedule as exc:
        return f"invalid: {exc.errors['schedule']}"
    return ", ".join(f"{when:{fmt}}" for when in times) if times else "—"
