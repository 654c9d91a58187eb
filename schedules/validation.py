"""One set of rules for every schedule: what the API, the admin forms and `sync_schedules` may
write, and what is wrong with a row already stored (beat, the lists and health read it that way).

Beat is the judge: crontab fields are parsed with celery's own parser, the schedule is built the
way django-celery-beat builds it (`TzAwareCrontab`, `timedelta(**{period: every})`), and its next
fire time is computed the way beat computes it. The limits (docs/schedules.md):

- an interval is a whole number of one of django-celery-beat's periods, from 1 second to 366 days
  in all (so beat's `last_run_at + interval` never overflows, and no schedule fires on every tick);
- a crontab must fire at least once in the next 5 years (31 February never does);
- args is a JSON array, kwargs (and headers) a JSON object;
- a crontab's time zone is one the tz database knows (the admin's choices);
- the task is a registered task, the queue one of the project's queues (or empty: the route).

A stored row is judged only on what beat needs to fire it (schedule, args, kwargs, headers), read
as raw column values, so a row no form could produce (raw SQL, an older version, an unknown time
zone that django-timezone-field refuses to load) is reported instead of raising.
"""

from __future__ import annotations

import functools
import json
import zoneinfo
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, TypeGuard

from celery import current_app
from celery.schedules import crontab
from django.conf import settings
from django.db.models import CharField, F, QuerySet
from django.db.models.functions import Cast
from django.db.models.query import ModelIterable
from django.utils import timezone
from django_celery_beat import validators as beat_validators
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.tzcrontab import TzAwareCrontab

MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
MAX_EVERY = 2_147_483_647  # the column is a signed 32-bit integer on MySQL/MariaDB
CRONTAB_HORIZON_DAYS = 5 * 366  # a crontab must fire within about 5 years
PERIODS = tuple(period for period, _ in IntervalSchedule.PERIOD_CHOICES)
CRON_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
# (max, min) as celery.schedules.crontab expands each field.
CRON_RANGES = {
    "minute": (60, 0),
    "hour": (24, 0),
    "day_of_week": (7, 0),
    "day_of_month": (31, 1),
    "month_of_year": (12, 1),
}
CRON_VALIDATORS = {
    "minute": beat_validators.minute_validator,
    "hour": beat_validators.hour_validator,
    "day_of_week": beat_validators.day_of_week_validator,
    "day_of_month": beat_validators.day_of_month_validator,
    "month_of_year": beat_validators.month_of_year_validator,
}
CRON_MAX_LENGTHS = {
    "minute": 240,
    "hour": 96,
    "day_of_week": 64,
    "day_of_month": 124,
    "month_of_year": 64,
}

Errors = dict[str, str]  # field name → one message


class InvalidSchedule(ValueError):
    """A schedule that breaks a rule; `errors` names each field."""

    def __init__(self, errors: Errors):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


# Intervals


def interval_length(every: int, period: str) -> timedelta:
    """The interval as beat computes it; OverflowError or TypeError if it cannot."""
    return timedelta(**{period: every})


def interval_errors(every: Any, period: Any) -> Errors:
    if period not in PERIODS:
        return {"period": f"Unknown period {period!r}: one of {', '.join(PERIODS)}."}
    if isinstance(every, bool) or not isinstance(every, int):
        return {"every": f"every {every!r} is not a whole number."}
    if every < 1:
        return {"every": f"every must be at least 1 (got {every})."}
    limit = f"an interval must be between 1 second and {MAX_INTERVAL.days} days"
    if every > MAX_EVERY:
        return {"every": f"every {every} {period} is too long: {limit}."}
    try:
        length = interval_length(every, period)
    except (OverflowError, TypeError):
        return {"every": f"every {every} {period} is too long: {limit}."}
    if length > MAX_INTERVAL:
        return {"every": f"every {every} {period} is too long: {limit}."}
    if length < MIN_INTERVAL:
        return {"every": f"every {every} {period} is too short: {limit}."}
    return {}


# Crontabs


@functools.cache
def known_zones() -> frozenset[str]:
    """The zones the admin offers (django-timezone-field's choices) and beat can load."""
    return frozenset(zoneinfo.available_timezones() - {"Factory"})


def known_zone(name: Any) -> TypeGuard[str]:
    return isinstance(name, str) and name in known_zones()


def cron_field_error(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"Invalid crontab {name} {value!r}: must be text."
    if len(value) > CRON_MAX_LENGTHS[name]:
        return f"Invalid crontab {name}: at most {CRON_MAX_LENGTHS[name]} characters."
    try:
        CRON_VALIDATORS[name](value)
        crontab._expand_cronspec(value, *CRON_RANGES[name])  # beat's own parser
    except Exception as exc:  # ValueError, ValidationError or celery's ParseException
        return f"Invalid crontab {name} {value!r}: {message_of(exc)}"
    return None


def crontab_schedule(values: Mapping[str, Any]) -> TzAwareCrontab:
    """The schedule beat builds from a crontab row (as CrontabSchedule.schedule does)."""
    return TzAwareCrontab(
        minute=values["minute"],
        hour=values["hour"],
        day_of_week=values["day_of_week"],
        day_of_month=values["day_of_month"],
        month_of_year=values["month_of_year"],
        tz=zoneinfo.ZoneInfo(values["timezone"]),
    )


def first_fire_date(schedule: crontab, today: date) -> date | None:
    """The first day from `today` on which the crontab fires, within the horizon, or None.

    Bounded by construction: it looks at CRONTAB_HORIZON_DAYS days and no more, whatever the
    fields, so it is safe to call before asking celery (whose own search may run much longer).
    """
    for offset in range(CRONTAB_HORIZON_DAYS + 1):
        day = today + timedelta(days=offset)
        if (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and day.isoweekday() % 7 in schedule.day_of_week
        ):
            return day
    return None


def crontab_errors(values: Mapping[str, Any]) -> Errors:
    """Every field of a crontab (minute … month_of_year, timezone) and the crontab as a whole."""
    errors: Errors = {}
    for name in CRON_FIELDS:
        if message := cron_field_error(name, values.get(name)):
            errors[name] = message
    zone = values.get("timezone")
    if not known_zone(zone):
        errors["timezone"] = f"Unknown time zone {zone!r}."
    if errors:
        return errors
    try:
        schedule = crontab_schedule(values)
    except ValueError as exc:  # fields that never meet, e.g. the 31st of February
        return {"day_of_month": message_of(exc).removeprefix("Invalid crontab: ")}
    now = timezone.now().astimezone(schedule.tz)
    never = "This crontab does not fire in the next 5 years."
    if first_fire_date(schedule, now.date()) is None:
        return {"day_of_month": never}
    try:
        remaining = schedule.remaining_estimate(now)  # as beat computes it
        fires_at = now + remaining
    except Exception as exc:
        return {"day_of_month": f"Beat cannot compute when this crontab fires: {message_of(exc)}"}
    if fires_at - now > timedelta(days=CRONTAB_HORIZON_DAYS):
        return {"day_of_month": never}
    return {}


# Arguments, task, queue


def json_error(value: Any, kind: type, *, stored: bool = True) -> str | None:
    """None if `value` (JSON text when `stored`, else the parsed value) is a JSON `kind`."""
    if stored:
        if value in (None, ""):
            return None  # beat reads an empty column as [] or {}
        try:
            value = json.loads(value)
        except (TypeError, ValueError) as exc:
            return f"Not valid JSON: {exc}."
    if not isinstance(value, kind):
        return f"Must be a JSON {'object' if kind is dict else 'array'}."
    return None


def registered_tasks() -> list[str]:
    current_app.loader.import_default_modules()  # the web process imports task modules lazily
    return sorted(name for name in current_app.tasks if not name.startswith("celery."))


def task_error(name: Any) -> str | None:
    known = registered_tasks()
    if name not in known:
        return f"Unknown task {name!r}. Registered tasks: {', '.join(known)}."
    return None


def queues() -> list[str]:
    return list(settings.TASK_TIME_LIMITS)


def queue_error(queue: Any) -> str | None:
    if queue in (None, ""):
        return None
    if queue not in queues():
        return f"Unknown queue {queue!r}. Queues: {', '.join(queues())}."
    return None


def message_of(exc: BaseException) -> str:
    messages = getattr(exc, "messages", None)
    text = " ".join(messages) if messages else str(exc)
    return text or type(exc).__name__


# Rows already stored


ROW_FIELDS: dict[str, Any] = {
    "every": F("interval__every"),
    "period": F("interval__period"),
    **{f"cron_{name}": F(f"crontab__{name}") for name in CRON_FIELDS},
    # As text: django-timezone-field raises while loading a zone it does not know.
    "cron_timezone": Cast("crontab__timezone", CharField(max_length=63)),
}


def stored_rows(queryset: QuerySet[PeriodicTask]) -> list[dict[str, Any]]:
    """What beat needs of each task, as raw column values (one query)."""
    return list(
        queryset.order_by().values(
            "id",
            "name",
            "enabled",
            "args",
            "kwargs",
            "headers",
            "interval_id",
            "crontab_id",
            "solar_id",
            "clocked_id",
            "last_run_at",
            **ROW_FIELDS,
        )
    )


def row_problem(row: Mapping[str, Any]) -> str | None:
    """Why beat cannot fire this stored task, in one sentence, or None."""
    kinds = [kind for kind in ("interval", "crontab", "solar", "clocked") if row[f"{kind}_id"]]
    if not kinds:
        return "it has no schedule"
    if len(kinds) > 1:
        return f"it has more than one schedule ({', '.join(kinds)})"
    horizon = None
    if kinds == ["interval"]:
        errors = interval_errors(row["every"], row["period"])
        if errors:
            return f"interval: {joined(errors)}"
        horizon = interval_length(row["every"], row["period"])
    if kinds == ["crontab"]:
        errors = crontab_errors({name: row[f"cron_{name}"] for name in (*CRON_FIELDS, "timezone")})
        if errors:
            return f"crontab: {joined(errors)}"
        horizon = timedelta(days=CRONTAB_HORIZON_DAYS)
    if horizon is not None and row["last_run_at"] is not None:
        try:
            row["last_run_at"] + horizon  # what beat adds to find the next run
        except OverflowError:
            late = f"{row['last_run_at']:%Y-%m-%d}"
            return f"last_run_at {late} is too late: its next run is past year 9999"
    for name, kind in (("args", list), ("kwargs", dict), ("headers", dict)):
        if message := json_error(row[name], kind):
            text = str(row[name])
            return f"{name}: {message} (stored: {text if len(text) <= 60 else text[:57] + '...'!r})"
    return None


def joined(errors: Errors) -> str:
    return " ".join(errors.values())


def stored_problems(queryset: QuerySet[PeriodicTask]) -> dict[int, str]:
    """{task id: why beat cannot fire it} for the broken tasks of `queryset` (one query)."""
    problems = {}
    for row in stored_rows(queryset):
        if (problem := row_problem(row)) is not None:
            problems[row["id"]] = problem
    return problems


def loaded_row(task: PeriodicTask) -> dict[str, Any]:
    """`stored_rows`' values from a task already loaded (best with `with_zone_text`)."""
    row: dict[str, Any] = {
        "id": task.pk,
        "name": task.name,
        "enabled": task.enabled,
        "args": task.args,
        "kwargs": task.kwargs,
        "headers": task.headers,
        "interval_id": task.interval_id,
        "crontab_id": task.crontab_id,
        "solar_id": task.solar_id,
        "clocked_id": task.clocked_id,
        "last_run_at": task.last_run_at,
        "every": task.interval.every if task.interval else None,
        "period": task.interval.period if task.interval else None,
    }
    cron = crontab_values(task) if task.crontab_id else {}
    for name in (*CRON_FIELDS, "timezone"):
        row[f"cron_{name}"] = cron.get(name)
    return row


def task_problem(task: PeriodicTask) -> str | None:
    """Why beat cannot fire this task (as loaded), or None."""
    return row_problem(loaded_row(task))


def schedule_problems() -> dict[str, str]:
    """{name: reason} of each enabled periodic task beat skips, by name (one query)."""
    rows = stored_rows(PeriodicTask.objects.filter(enabled=True))
    problems = {row["name"]: row_problem(row) for row in sorted(rows, key=lambda r: r["name"])}
    return {name: problem for name, problem in problems.items() if problem is not None}


def broken_schedules() -> list[str]:
    """Each enabled periodic task beat skips, as "name: reason", by name."""
    return [f"{name}: {problem}" for name, problem in schedule_problems().items()]


def broken_schedule_names() -> list[str]:
    """The names alone, for the anonymous health check (the reasons are for staff: the API, the
    admin, beat's log and `manage.py sync_schedules` give them)."""
    return list(schedule_problems())


class _TasksWithZoneText(ModelIterable):
    """Tasks whose select_related crontab gets its zone from the text annotation: a ZoneInfo if
    the tz database knows it, else the stored text, so str(), the admin and the API never load
    it (django-timezone-field raises loading a zone it does not know)."""

    def __iter__(self):
        for task in super().__iter__():
            cron = task._state.fields_cache.get("crontab")
            if cron is not None and "timezone" not in cron.__dict__:
                set_zone_text(cron, task.crontab_zone)
            yield task


class _CrontabsWithZoneText(ModelIterable):
    def __iter__(self):
        for cron in super().__iter__():
            if "timezone" not in cron.__dict__:
                set_zone_text(cron, cron.zone_text)
            yield cron


def set_zone_text(cron: CrontabSchedule, zone: str | None) -> None:
    # Straight into __dict__: the field's descriptor would parse it and raise for an unknown one.
    cron.__dict__["timezone"] = zoneinfo.ZoneInfo(zone) if known_zone(zone) else zone


def with_zone_text(queryset: QuerySet[PeriodicTask]) -> QuerySet[PeriodicTask]:
    """Tasks with their interval and crontab, the crontab's zone read as text (`crontab_zone`),
    so a row with a zone django-timezone-field refuses still loads (lists and the API use it)."""
    queryset = (
        queryset.select_related("interval", "crontab")
        .defer("crontab__timezone")
        .annotate(crontab_zone=Cast("crontab__timezone", CharField(max_length=63)))
    )
    queryset._iterable_class = _TasksWithZoneText  # kept by .filter(), .order_by(), ...
    return queryset


def with_zone_texts(queryset: QuerySet[CrontabSchedule]) -> QuerySet[CrontabSchedule]:
    """Crontabs loadable whatever their zone (read as text, `zone_text`)."""
    queryset = queryset.defer("timezone").annotate(
        zone_text=Cast("timezone", CharField(max_length=63))
    )
    queryset._iterable_class = _CrontabsWithZoneText
    return queryset


def zone_name(task: PeriodicTask) -> str:
    """The zone beat reads the task's schedule in: its crontab's, else TIME_ZONE."""
    return crontab_values(task)["timezone"] if task.crontab_id else settings.TIME_ZONE


def crontab_values(task: PeriodicTask) -> dict[str, str]:
    """A task's crontab fields and zone as text, never loading the zone as an object (a zone
    the tz database does not know would raise). The task must have a crontab."""
    if PeriodicTask.crontab.is_cached(task) and task.crontab is not None:
        return cron_row_values(task.crontab, getattr(task, "crontab_zone", None))
    return cron_row_values(
        with_zone_texts(CrontabSchedule.objects.filter(pk=task.crontab_id)).get()
    )


def cron_row_values(cron: CrontabSchedule, zone: str | None = None) -> dict[str, str]:
    """A crontab row's fields and zone as text (`zone`: the zone read as text, if known)."""
    values = {name: getattr(cron, name) for name in CRON_FIELDS}
    if "timezone" in cron.__dict__:  # loaded, so it is a zone django-timezone-field knows
        return values | {"timezone": str(cron.timezone)}
    zone = zone or getattr(cron, "zone_text", None)
    if zone is None:
        zone = with_zone_texts(CrontabSchedule.objects.filter(pk=cron.pk)).get().zone_text
    return values | {"timezone": str(zone)}


def crontab_text(values: Mapping[str, str]) -> str:
    """As django-celery-beat writes a crontab: `0 2 * * * (m/h/dM/MY/d) Asia/Shanghai`."""
    fields = (values[name] for name in ("minute", "hour", "day_of_month", "month_of_year"))
    return f"{' '.join(fields)} {values['day_of_week']} (m/h/dM/MY/d) {values['timezone']}"


def human_crontab(values: Mapping[str, str]) -> str:
    """django-celery-beat's human-readable text ("At 02:00 AM Asia/Shanghai"), from text."""
    if not known_zone(values["timezone"]):
        return f"{crontab_text(values)} (unknown time zone)"
    return str(CrontabSchedule(**values).human_readable)  # unsaved: no query


def schedule_text(task: PeriodicTask) -> str:
    """The task's schedule as text ("every 15 seconds", a crontab), whatever the row holds."""
    if task.interval_id:
        return str(task.interval)
    if task.crontab_id:
        return crontab_text(crontab_values(task))
    scheduler = task.solar or task.clocked
    return str(scheduler) if scheduler else "no schedule"
