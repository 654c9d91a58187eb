"""The schedule audit trail: each change to a periodic task or its schedule, and who made it.

Saves and deletes are caught by model signals, so the admin, the API and the shell are all covered;
the admin and the API say who is acting with `acting_as`. Bulk `.update()` calls bypass signals,
so the code that makes them records the change itself with `record`. Beat's own bookkeeping
(last_run_at, total_run_count) is not a change and is not recorded.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from . import validation
from .models import ScheduleChange

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

AUDITED = (PeriodicTask, IntervalSchedule, CrontabSchedule)
BOOKKEEPING = {"id", "last_run_at", "total_run_count", "date_changed"}

_actor: contextvars.ContextVar[tuple[User | None, str]] = contextvars.ContextVar(
    "schedule_actor", default=(None, "system")
)


@contextmanager
def acting_as(user: User | AnonymousUser | None, source: str) -> Iterator[None]:
    """Attribute the schedule changes made inside the block to `user`, through `source`."""
    token = _actor.set((user if user and user.is_authenticated else None, source))
    try:
        yield
    finally:
        _actor.reset(token)


def snapshot(instance: models.Model) -> dict[str, object]:
    """The audited fields of a row as JSON values; a foreign key shows as its text (every 15 s)."""
    values: dict[str, object] = {}
    for field in instance._meta.concrete_fields:
        if field.name in BOOKKEEPING:
            continue
        if field.is_relation:
            values[field.name] = related_text(instance, field)
        else:
            values[field.name] = as_json(field.value_from_object(instance))
    return values


def related_text(instance: models.Model, field) -> str | None:
    """A schedule as its text; a row that cannot load (a crontab whose time zone the tz database
    does not know, written around the forms) as its id, so recording never fails a write."""
    try:
        related = getattr(instance, field.name)
        return str(related) if related is not None else None
    except ValidationError:
        return f"{field.name} #{field.value_from_object(instance)} (unreadable)"


def as_json(value):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)  # time zones, decimals


def diff(before: dict, after: dict) -> dict[str, list]:
    return {
        name: [before.get(name), value]
        for name, value in after.items()
        if before.get(name) != value
    }


def record(instance: models.Model, action: str, changes: dict) -> ScheduleChange:
    user, source = _actor.get()
    return ScheduleChange.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        source=source,
        action=action,
        object_type=str(instance._meta.model_name),  # always set on a concrete model
        object_id=instance.pk,
        object_repr=str(instance)[:255],
        changes=changes,
    )


def is_bookkeeping(instance: models.Model) -> bool:
    # Beat marks the rows it saves after firing with no_changes (django-celery-beat's own flag).
    return bool(getattr(instance, "no_changes", False))


def remember_before(sender, instance, raw=False, **kwargs) -> None:
    if raw or is_bookkeeping(instance) or instance.pk is None:
        instance._audit_before = None
        return
    rows = sender._default_manager.filter(pk=instance.pk)
    if sender is CrontabSchedule:  # its zone read as text: an unknown one must not fail a fix
        rows = validation.with_zone_texts(rows)
    old = rows.first()
    instance._audit_before = snapshot(old) if old else None


def record_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or is_bookkeeping(instance):
        return
    after = snapshot(instance)
    before = getattr(instance, "_audit_before", None)
    if created or before is None:
        record(instance, ScheduleChange.Action.CREATED, diff({}, after))
        return
    changes = diff(before, after)
    if changes:
        record(instance, ScheduleChange.Action.CHANGED, changes)


def record_delete(sender, instance, **kwargs) -> None:
    record(instance, ScheduleChange.Action.DELETED, diff(snapshot(instance), {}))


def record_bulk(queryset: models.QuerySet, **new_values) -> int:
    """`.update()` with an audit row per changed task (bulk updates send no signals)."""
    rows = list(queryset)
    updated = queryset.model._default_manager.filter(pk__in=[r.pk for r in rows]).update(
        **new_values
    )
    for row in rows:
        changes = {
            name: [as_json(getattr(row, name)), as_json(value)]
            for name, value in new_values.items()
            if getattr(row, name) != value
        }
        if changes:
            row.__dict__.update(new_values)
            record(row, ScheduleChange.Action.CHANGED, changes)
    return updated


def connect_signals() -> None:
    """Record every save and delete of an audited model; `SchedulesConfig.ready()` calls this."""
    for model in AUDITED:
        uid = f"schedules.audit.{model.__name__}"
        pre_save.connect(remember_before, sender=model, dispatch_uid=f"{uid}.before")
        post_save.connect(record_save, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(record_delete, sender=model, dispatch_uid=f"{uid}.delete")
