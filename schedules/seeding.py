"""The three maintenance schedules, created in the database only when missing.

Not CELERY_BEAT_SCHEDULE: beat copies that over the database at every start, which would undo an
operator's edits in the admin. Here an existing row (found by its unique name) is never touched.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from . import audit, validation


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
    """Create each default schedule that is missing; return the names created.

    Every spec is checked first (schedules.validation, as the API and the admin check theirs),
    and all are created in one transaction: an invalid one raises InvalidSchedule and creates
    nothing.
    """
    specs = defaults()
    for name, spec in specs.items():
        check_spec(name, spec)
    created = []
    with transaction.atomic(), audit.acting_as(None, "sync_schedules"):
        existing = set(PeriodicTask.objects.values_list("name", flat=True))
        for name, spec in specs.items():
            if name not in existing:
                create_schedule(name, spec)
                created.append(name)
    return created


def crontab_of(spec: dict) -> dict[str, str]:
    return {
        "minute": "*",
        "hour": "*",
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": settings.TIME_ZONE,
        **spec["crontab"],
    }


def check_spec(name: str, spec: dict) -> None:
    """Raise InvalidSchedule naming the schedule and the field if a default breaks a rule."""
    if "every_seconds" in spec:
        errors = validation.interval_errors(spec["every_seconds"], IntervalSchedule.SECONDS)
    else:
        errors = validation.crontab_errors(crontab_of(spec))
    if message := validation.json_error(spec["kwargs"], dict, stored=False):
        errors["kwargs"] = message
    if message := validation.task_error(spec["task"]):
        errors["task"] = message
    if errors:
        raise validation.InvalidSchedule({f"{name} {field}": m for field, m in errors.items()})


@transaction.atomic
def create_schedule(name: str, spec: dict) -> PeriodicTask:
    timing = {}
    if "every_seconds" in spec:
        timing["interval"] = first_or_create(
            IntervalSchedule, every=spec["every_seconds"], period=IntervalSchedule.SECONDS
        )
    else:
        timing["crontab"] = first_or_create(CrontabSchedule, **crontab_of(spec))
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
