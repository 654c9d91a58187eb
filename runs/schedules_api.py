"""The schedules API (staff only): periodic tasks with an interval or a crontab, audited.

The seed's `POST /api/v1/scheduled-tasks` with flat `task_crontab_*` fields is the idea; here the
schedule is nested: `{"interval": {"every": 15, "period": "seconds"}}` or
`{"crontab": {"minute": "0", "hour": "*/2", ...}}`. Schedule rows are shared and never edited in
place through the API: a task is pointed at an existing or new row with the wanted values.
"""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import current_app
from django.conf import settings
from django.db import transaction
from django_celery_beat import validators
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from rest_framework import permissions, serializers, viewsets
from rest_framework.routers import SimpleRouter

from . import audit
from .schedules import first_or_create, next_run_times

CRON_FIELDS = {
    "minute": validators.minute_validator,
    "hour": validators.hour_validator,
    "day_of_week": validators.day_of_week_validator,
    "day_of_month": validators.day_of_month_validator,
    "month_of_year": validators.month_of_year_validator,
}


def registered_tasks() -> list[str]:
    current_app.loader.import_default_modules()  # the web process imports task modules lazily
    return sorted(name for name in current_app.tasks if not name.startswith("celery."))


class IntervalSerializer(serializers.Serializer):
    every = serializers.IntegerField(min_value=1)
    period = serializers.ChoiceField(choices=[p for p, _ in IntervalSchedule.PERIOD_CHOICES])


class CrontabSerializer(serializers.Serializer):
    minute = serializers.CharField(max_length=240, default="*")
    hour = serializers.CharField(max_length=96, default="*")
    day_of_week = serializers.CharField(max_length=64, default="*")
    day_of_month = serializers.CharField(max_length=124, default="*")
    month_of_year = serializers.CharField(max_length=64, default="*")
    timezone = serializers.CharField(max_length=63, default=settings.TIME_ZONE)

    def validate(self, data):
        errors = {}
        for name, check in CRON_FIELDS.items():
            try:
                check(data[name])
            except Exception as exc:  # the validators raise ValueError or ValidationError
                errors[name] = [f"Invalid crontab {name} {data[name]!r}: {message_of(exc)}"]
        try:
            ZoneInfo(data["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = [f"Unknown time zone {data['timezone']!r}."]
        if errors:
            raise serializers.ValidationError(errors)
        return data


def message_of(exc: Exception) -> str:
    messages = getattr(exc, "messages", None)
    return " ".join(messages) if messages else str(exc)


class JSONTextField(serializers.JSONField):
    """A JSON value stored as text (django-celery-beat's args and kwargs columns)."""

    def __init__(self, *, kind: type, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, self.kind):
            raise serializers.ValidationError(f"Must be a JSON {self.kind.__name__}.")
        return json.dumps(data)

    def to_representation(self, value):
        return json.loads(value or ("{}" if self.kind is dict else "[]"))


class ScheduleSerializer(serializers.ModelSerializer):
    interval = IntervalSerializer(required=False, allow_null=True)
    crontab = CrontabSerializer(required=False, allow_null=True)
    kwargs = JSONTextField(kind=dict, required=False)
    args = JSONTextField(kind=list, required=False)
    queue = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    next_run_at = serializers.SerializerMethodField()

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
            "date_changed",
        )
        read_only_fields = ("last_run_at", "total_run_count", "date_changed")

    def get_next_run_at(self, task) -> str | None:
        times = next_run_times(task, count=1)
        return times[0].isoformat() if times else None

    def validate_task(self, name: str) -> str:
        known = registered_tasks()
        if name not in known:
            raise serializers.ValidationError(
                f"Unknown task {name!r}. Registered tasks: {', '.join(known)}."
            )
        return name

    def validate_queue(self, queue: str | None) -> str | None:
        queues = list(settings.TASK_TIME_LIMITS)
        if queue and queue not in queues:
            raise serializers.ValidationError(
                f"Unknown queue {queue!r}. Queues: {', '.join(queues)}."
            )
        return queue or None

    def validate(self, data):
        interval = data.get("interval", self.instance and self.instance.interval_id)
        crontab = data.get("crontab", self.instance and self.instance.crontab_id)
        if "interval" in data and data["interval"] and "crontab" not in data:
            crontab = None  # switching kinds: the new one replaces the old
        if "crontab" in data and data["crontab"] and "interval" not in data:
            interval = None
        if bool(interval) == bool(crontab):
            message = "Give exactly one of interval and crontab."
            raise serializers.ValidationError({"interval": [message], "crontab": [message]})
        return data

    def to_representation(self, task):
        data = super().to_representation(task)
        data["interval"] = (
            {"every": task.interval.every, "period": task.interval.period}
            if task.interval
            else None
        )
        data["crontab"] = (
            {name: getattr(task.crontab, name) for name in (*CRON_FIELDS, "timezone")}
            | {"timezone": str(task.crontab.timezone)}
            if task.crontab
            else None
        )
        return data

    @transaction.atomic
    def create(self, validated_data):
        return PeriodicTask.objects.create(**self._with_schedule_rows(validated_data))

    @transaction.atomic
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
    """Periodic tasks: list, create, read, update (PUT or PATCH) and delete; staff only."""

    serializer_class = ScheduleSerializer
    permission_classes = [permissions.IsAdminUser]
    queryset = PeriodicTask.objects.select_related("interval", "crontab").order_by("name")

    def perform_create(self, serializer):
        with audit.acting_as(self.request.user, "api"):
            serializer.save()

    def perform_update(self, serializer):
        with audit.acting_as(self.request.user, "api"):
            serializer.save()

    def perform_destroy(self, instance):
        with audit.acting_as(self.request.user, "api"):
            instance.delete()


router = SimpleRouter()
router.register("schedules", SchedulesViewSet, basename="schedule")
urlpatterns = router.urls
