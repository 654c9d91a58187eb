"""The schedules API (staff only): periodic tasks with an interval or a crontab, audited.

The seed's `POST /api/v1/scheduled-tasks` with flat `task_crontab_*` fields is the idea; here the
schedule is nested: `{"interval": {"every": 15, "period": "seconds"}}` or
`{"crontab": {"minute": "0", "hour": "*/2", ...}}`. Schedule rows are shared and never edited in
place through the API: a task is pointed at an existing or new row with the wanted values.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from rest_framework import permissions, serializers, viewsets

from . import audit, validation
from .seeding import first_or_create
from .timing import next_run_times
from .validation import CRON_FIELDS, InvalidSchedule


def as_drf_errors(errors: validation.Errors) -> dict[str, list[str]]:
    return {name: [message] for name, message in errors.items()}


def root_instance(field: serializers.Field) -> PeriodicTask | None:
    instance = field.root.instance
    return instance if isinstance(instance, PeriodicTask) else None


class IntervalSerializer(serializers.Serializer):
    """`every` whole `period`s, from 1 second to 366 days in all. In a PATCH, a field not given
    keeps the task's stored value (`{"every": 7}` keeps the period)."""

    every = serializers.IntegerField(min_value=1, max_value=validation.MAX_EVERY)
    period = serializers.ChoiceField(choices=validation.PERIODS)

    def validate(self, data):
        task = root_instance(self)
        stored = (
            {"every": task.interval.every, "period": task.interval.period}
            if task is not None and task.interval is not None
            else {}
        )
        merged = stored | dict(data)
        missing = [name for name in ("every", "period") if name not in merged]
        if missing:
            raise serializers.ValidationError(
                {name: ["This field is required."] for name in missing}
            )
        if errors := validation.interval_errors(merged["every"], merged["period"]):
            raise serializers.ValidationError(as_drf_errors(errors))
        return merged


CRONTAB_DEFAULTS = {name: "*" for name in CRON_FIELDS}


class CrontabSerializer(serializers.Serializer):
    """Fields parsed as beat parses them; the crontab must fire within 5 years. In a PATCH, a
    field not given keeps the task's stored value (or `*` and TIME_ZONE if it had none)."""

    minute = serializers.CharField(max_length=240, default="*")
    hour = serializers.CharField(max_length=96, default="*")
    day_of_week = serializers.CharField(max_length=64, default="*")
    day_of_month = serializers.CharField(max_length=124, default="*")
    month_of_year = serializers.CharField(max_length=64, default="*")
    timezone = serializers.CharField(max_length=63, default=settings.TIME_ZONE)

    def get_attribute(self, instance):
        """The task's crontab as text: its zone is never loaded as an object (one the tz database
        does not know, written around the API, would fail the whole list)."""
        return validation.crontab_values(instance) if instance.crontab_id else None

    def validate(self, data):
        task = root_instance(self)
        stored = validation.crontab_values(task) if task is not None and task.crontab_id else {}
        merged = CRONTAB_DEFAULTS | {"timezone": settings.TIME_ZONE} | stored | dict(data)
        if errors := validation.crontab_errors(merged):
            raise serializers.ValidationError(as_drf_errors(errors))
        return merged


class JSONTextField(serializers.JSONField):
    """A JSON value stored as text (django-celery-beat's args and kwargs columns)."""

    def __init__(self, *, kind: type, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if message := validation.json_error(data, self.kind, stored=False):
            raise serializers.ValidationError(message)
        return json.dumps(data)

    def to_representation(self, value):
        try:
            return json.loads(value or ("{}" if self.kind is dict else "[]"))
        except ValueError:
            return value  # a row written around the API: shown as stored (see `problem`)


class ScheduleSerializer(serializers.ModelSerializer):
    interval = IntervalSerializer(required=False, allow_null=True)
    crontab = CrontabSerializer(required=False, allow_null=True)
    kwargs = JSONTextField(kind=dict, required=False)
    args = JSONTextField(kind=list, required=False)
    queue = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    next_run_at = serializers.SerializerMethodField()
    problem = serializers.SerializerMethodField()

    class Meta:
        model = PeriodicTask
        fields = (
            "id",
            "name",
            "task",
            "enabled",
            "interval",
            "crontab",
            "queue",
            "args",
            "kwargs",
            "description",
            "one_off",
            "last_run_at",
            "total_run_count",
            "next_run_at",
            "problem",
            "date_changed",
        )
        read_only_fields = ("last_run_at", "total_run_count", "date_changed")

    def get_next_run_at(self, task) -> str | None:
        try:
            times = next_run_times(task, count=1)
        except InvalidSchedule:
            return None  # `problem` says why
        return times[0].isoformat() if times else None

    def get_problem(self, task) -> str | None:
        """Why beat skips this task ("invalid: <reason>"), or null."""
        problem = validation.task_problem(task)
        return f"invalid: {problem}" if problem else None

    def validate_task(self, name: str) -> str:
        if message := validation.task_error(name):
            raise serializers.ValidationError(message)
        return name

    def validate_queue(self, queue: str | None) -> str | None:
        if message := validation.queue_error(queue):
            raise serializers.ValidationError(message)
        return queue or None

    def validate(self, data):
        task = self.instance
        interval = data.get("interval", task and task.interval_id)
        crontab = data.get("crontab", task and task.crontab_id)
        if "interval" in data and data["interval"] and "crontab" not in data:
            crontab = None  # switching kinds: the new one replaces the old
        if "crontab" in data and data["crontab"] and "interval" not in data:
            interval = None
        if bool(interval) == bool(crontab):
            message = "Give exactly one of interval and crontab."
            raise serializers.ValidationError({"interval": [message], "crontab": [message]})
        if task is not None and data.get("enabled", task.enabled):
            self._refuse_broken_stored_values(task, data)
        return data

    @staticmethod
    def _refuse_broken_stored_values(task: PeriodicTask, data: dict[str, Any]) -> None:
        """An enabled task may not keep a stored value beat cannot use (a row written around
        the API): the write must replace it, or disable the task."""
        row = validation.loaded_row(task)
        errors = {}
        if not data.get("interval") and not data.get("crontab"):
            kind = "interval" if task.interval_id else "crontab"
            if problem := validation.row_problem({**row, "args": "", "kwargs": "", "headers": ""}):
                errors[kind] = [f"The stored {kind} is invalid ({problem}): give a new one."]
        for name, expected in (("args", list), ("kwargs", dict)):
            if name not in data and (message := validation.json_error(row[name], expected)):
                errors[name] = [f"The stored {name} are invalid ({message}): give new ones."]
        if errors:
            raise serializers.ValidationError(errors)

    def create(self, validated_data):
        return PeriodicTask.objects.create(**self._with_schedule_rows(validated_data))

    def update(self, task, validated_data):
        for name, value in self._with_schedule_rows(validated_data).items():
            setattr(task, name, value)
        task.save()
        return task

    def _with_schedule_rows(self, data: dict) -> dict:
        """Swap the nested interval or crontab for a (shared) schedule row with those values."""
        interval, crontab = data.pop("interval", None), data.pop("crontab", None)
        if interval:
            data["interval"] = first_or_create(IntervalSchedule, **interval)
            data["crontab"] = None
        if crontab:
            data["crontab"] = first_or_create(CrontabSchedule, **crontab)
            data["interval"] = None
        return data


class SchedulesViewSet(viewsets.ModelViewSet):
    """Periodic tasks: list, create, read, update (PUT or PATCH) and delete; staff only.

    Each write, its audit rows and the answer built from it are one transaction: a failure
    anywhere (a 400, or a 500 while answering) stores nothing.
    """

    serializer_class = ScheduleSerializer
    permission_classes = [permissions.IsAdminUser]
    cursor_ordering = ("name",)  # unique (runs.pagination.CursorPages)
    queryset = validation.with_zone_text(PeriodicTask.objects.all()).order_by("name")

    @transaction.atomic
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @transaction.atomic
    def update(self, request, *args, **kwargs):
        return super().update(request, *args, **kwargs)

    @transaction.atomic
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer):
        with audit.acting_as(self.request.user, "api"):
            serializer.save()

    def perform_update(self, serializer):
        with audit.acting_as(self.request.user, "api"):
            serializer.save()

    def perform_destroy(self, instance):
        with audit.acting_as(self.request.user, "api"):
            instance.delete()
