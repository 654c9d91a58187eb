"""django-celery-beat's admin plus next run times, last result, audited actions and the trail."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult
from kombu.utils.json import loads

from . import audit, validation
from .models import ScheduleChange
from .timing import InvalidSchedule, next_run_text, next_run_times, schedule_zone

TRAIL_LENGTH = 20


def zoned(moment: datetime | None) -> str:
    """A time in the site's zone, with the zone's name: "2026-12-01 14:03:05 Asia/Shanghai"."""
    if moment is None:
        return "—"
    if timezone.is_naive(moment):
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    try:
        local = timezone.localtime(moment)
    except OverflowError:  # near the year 9999 the local time may not exist: say it in UTC
        return f"{moment:%Y-%m-%d %H:%M:%S %Z}"
    return f"{local:%Y-%m-%d %H:%M:%S} {timezone.get_current_timezone_name()}"


def with_zoned_last_run(fieldsets):
    """django-celery-beat's fieldsets with `last_run_at` shown by `last_run` (zone named)."""
    return tuple(
        (title, {**options, "fields": tuple(
            "last_run" if name == "last_run_at" else name for name in options["fields"]
        )})
        for title, options in fieldsets
    )  # fmt: skip


class AuditedAdminMixin(admin.ModelAdmin):
    """Attribute every save, delete and action made through these admin pages to the user."""

    def changeform_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user, "admin"):
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user, "admin"):
            return super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user, "admin"):
            return super().changelist_view(request, *args, **kwargs)


def last_result(task: PeriodicTask) -> TaskResult | None:
    return (
        TaskResult.objects.filter(periodic_task_name=task.name)
        .only("id", "status", "date_done", "result")
        .order_by("-date_done")
        .first()
    )


def trail_for(task: PeriodicTask):
    """Changes to the task and to the interval or crontab it uses now."""
    objects = [("periodictask", task.pk)]
    if task.interval_id:
        objects.append(("intervalschedule", task.interval_id))
    if task.crontab_id:
        objects.append(("crontabschedule", task.crontab_id))
    rows = ScheduleChange.objects.none()
    for object_type, object_id in objects:
        rows |= ScheduleChange.objects.filter(object_type=object_type, object_id=object_id)
    return rows.order_by("-at", "-id")[:TRAIL_LENGTH]


def add_errors(form: forms.BaseForm, errors: validation.Errors) -> None:
    """Each message on its field, unless the field already has one."""
    for name, message in errors.items():
        if name not in form.errors:
            form.add_error(name if name in form.fields else None, message)


class CrontabChoiceField(forms.ModelChoiceField):
    """The crontab select of a task: every row, a broken one marked, and none loaded with its
    zone as an object (a zone the tz database does not know would fail the whole page)."""

    def label_from_instance(self, obj):
        values = validation.cron_row_values(obj)
        text = validation.crontab_text(values)
        errors = validation.crontab_errors(values)
        return f"{text} (invalid: {validation.joined(errors)})" if errors else text


class PeriodicTaskForm(beat_admin.PeriodicTaskForm):
    """django-celery-beat's form with the API's rules (schedules.validation)."""

    def _clean_json_of(self, name: str, kind: type) -> str:
        value = self._clean_json(name)
        if message := validation.json_error(value, kind):
            raise forms.ValidationError(message)
        return value

    def clean_args(self):
        return self._clean_json_of("args", list)

    def clean_kwargs(self):
        return self._clean_json_of("kwargs", dict)

    def clean_headers(self):
        return self._clean_json_of("headers", dict)

    def clean_queue(self):
        queue = self.cleaned_data.get("queue")
        if message := validation.queue_error(queue):
            raise forms.ValidationError(message)
        return queue

    def clean(self):
        data = super().clean()
        if data.get("task") and (message := validation.task_error(data["task"])):
            self.add_error("regtask" if data.get("regtask") else "task", message)
        if data.get("enabled", True):
            self._refuse_broken_schedule_rows(data)
        return data

    def _refuse_broken_schedule_rows(self, data: dict) -> None:
        """An enabled task may not use an interval or crontab row beat cannot fire (one written
        around the forms)."""
        interval, crontab = data.get("interval"), data.get("crontab")
        if interval is not None and (
            errors := validation.interval_errors(interval.every, interval.period)
        ):
            self.add_error("interval", f"This interval is invalid: {validation.joined(errors)}")
        if crontab is not None and (
            errors := validation.crontab_errors(validation.cron_row_values(crontab))
        ):
            self.add_error("crontab", f"This crontab is invalid: {validation.joined(errors)}")


class IntervalScheduleForm(forms.ModelForm):
    class Meta:
        model = IntervalSchedule
        fields = ("every", "period")

    def clean(self):
        data = super().clean() or {}
        if "every" in data and "period" in data:
            add_errors(self, validation.interval_errors(data["every"], data["period"]))
        return data


class CrontabScheduleForm(forms.ModelForm):
    class Meta:
        model = CrontabSchedule
        fields = (*validation.CRON_FIELDS, "timezone")

    def clean(self):
        data = super().clean() or {}
        names = (*validation.CRON_FIELDS, "timezone")
        if all(data.get(name) for name in names):
            values = {name: str(data[name]) for name in names}
            add_errors(self, validation.crontab_errors(values))
        return data


def readable_crontabs() -> dict[int, str]:
    """{crontab id: its human-readable text} for the task form's script, whatever the zones."""
    rows = validation.with_zone_texts(CrontabSchedule.objects.all())
    return {row.pk: validation.human_crontab(validation.cron_row_values(row)) for row in rows}


class PeriodicTaskAdmin(AuditedAdminMixin, beat_admin.PeriodicTaskAdmin):
    form = PeriodicTaskForm
    # No date drill-down: it converts time zones in the database (CONVERT_TZ), which fails on a
    # MySQL or MariaDB without time zone tables. The date filters work everywhere.
    date_hierarchy = None
    list_display = (
        "name",
        "enabled",
        "task",
        "schedule",
        "next_run",
        "last_result_link",
        "last_run",
        "total_run_count",
    )
    readonly_fields = (
        *beat_admin.PeriodicTaskAdmin.readonly_fields,
        "last_run",
        "next_runs",
        "last_result_link",
        "audit_trail",
    )
    fieldsets = (
        ("Status", {"fields": ("next_runs", "last_result_link")}),
        *with_zoned_last_run(beat_admin.PeriodicTaskAdmin.fieldsets),
        ("Audit trail", {"fields": ("audit_trail",)}),
    )
    actions = ("enable_tasks", "disable_tasks", "run_tasks")

    def get_queryset(self, request):
        # A crontab's zone is read as text: one the tz database does not know must not fail
        # the list (the row shows "invalid: ..." instead).
        return validation.with_zone_text(super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "crontab":
            kwargs["queryset"] = validation.with_zone_texts(CrontabSchedule.objects.all())
            kwargs["form_class"] = CrontabChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # django-celery-beat's own changeform_view only adds these texts, loading every crontab
        # with its zone as an object; skip it and add them safely.
        extra_context = {**(extra_context or {}), "readable_crontabs": readable_crontabs()}
        with audit.acting_as(request.user, "admin"):
            return admin.ModelAdmin.changeform_view(
                self, request, object_id, form_url, extra_context
            )

    @admin.display(description="schedule")
    def schedule(self, task):
        return validation.schedule_text(task)

    def crontab_translation(self, task):
        if not task.crontab_id:
            return "—"
        return validation.human_crontab(validation.crontab_values(task))

    @admin.display(description="next run")
    def next_run(self, task):
        text = next_run_text(task, fmt="%Y-%m-%d %H:%M:%S")
        return f"{text} {schedule_zone(task).key}" if text[:1].isdigit() else text

    @admin.display(description="last run at", ordering="last_run_at")
    def last_run(self, task):
        return zoned(task.last_run_at)

    @admin.display(description="next run times")
    def next_runs(self, task):
        if task.pk is None:
            return "—"
        try:
            times = next_run_times(task)
        except InvalidSchedule as exc:
            return f"invalid: {exc.errors['schedule']}"
        if not times:
            return "disabled" if not task.enabled else "—"
        zone = schedule_zone(task)
        return format_html(
            "{}<br>in {}",
            format_html_join(
                "",
                "{}<br>",
                (
                    (f"{when:%Y-%m-%d %H:%M:%S} {zone.key} ({when:%Z}, UTC{when:%z})",)
                    for when in times
                ),
            ),
            zone.key,
        )

    @admin.display(description="last result")
    def last_result_link(self, task):
        result = last_result(task) if task.pk else None
        if result is None:
            return "—"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        done = zoned(result.date_done) if result.date_done else ""
        return format_html('<a href="{}">{} {}</a>', url, result.status, done)

    @admin.display(description="changes")
    def audit_trail(self, task):
        rows = list(trail_for(task)) if task.pk else []
        if not rows:
            return "No recorded changes."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    zoned(row.at),
                    row.actor_name or "—",
                    row.source,
                    row.action,
                    describe(row),
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="audit-trail"><tr><th>when</th><th>who</th><th>via</th>'
            "<th>what</th><th>changes</th></tr>{}</table>",
            body,
        )

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._set_enabled(request, self._without_broken(request, queryset, "enabled"), True)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        fields = {"enabled": enabled} if enabled else {"enabled": False, "last_run_at": None}
        changed = audit.record_bulk(queryset.exclude(enabled=enabled), **fields)
        PeriodicTasks.update_changed()  # bulk updates send no signal; beat must re-read
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} task(s) {state}.", messages.SUCCESS)

    def _without_broken(self, request, queryset, what: str):
        """The selected tasks beat can fire; the others are named in an error message."""
        problems = validation.stored_problems(queryset)
        if problems:
            names = dict(queryset.filter(pk__in=problems).values_list("pk", "name"))
            listed = "; ".join(f"{names[pk]}: {problem}" for pk, problem in problems.items())
            self.message_user(request, f"Not {what} (invalid): {listed}", messages.ERROR)
        return queryset.exclude(pk__in=problems)

    @admin.action(description="Run selected tasks now")
    def run_tasks(self, request, queryset):
        queryset = self._without_broken(request, queryset, "run")
        if not queryset.exists():
            return
        tasks = list(queryset)
        super().run_tasks(request, queryset)
        self.celery_app.loader.import_default_modules()
        if all(task.task in self.celery_app.tasks for task in tasks):  # else none was sent
            for task in tasks:
                audit.record(task, ScheduleChange.Action.RUN_NOW, {"kwargs": loads(task.kwargs)})


def describe(row: ScheduleChange) -> str:
    changes = "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in row.changes.items())
    return f"{row.object_type} {row.object_repr}: {changes}" if changes else row.object_repr


class PeriodicTaskInline(beat_admin.PeriodicTaskInline):
    """The tasks using a schedule, loadable whatever their crontab's zone."""

    def get_queryset(self, request):
        return validation.with_zone_text(super().get_queryset(request))


class IntervalScheduleAdmin(AuditedAdminMixin, beat_admin.IntervalScheduleAdmin):
    form = IntervalScheduleForm
    inlines = [PeriodicTaskInline]


class CrontabScheduleAdmin(AuditedAdminMixin, beat_admin.CrontabScheduleAdmin):
    form = CrontabScheduleForm
    inlines = [PeriodicTaskInline]
    list_display = ("schedule", "readable")

    def get_queryset(self, request):
        return validation.with_zone_texts(super().get_queryset(request))

    @admin.display(description="crontab")
    def schedule(self, cron):
        return validation.crontab_text(validation.cron_row_values(cron))

    @admin.display(description="human readable")
    def readable(self, cron):
        values = validation.cron_row_values(cron)
        errors = validation.crontab_errors(values)
        if errors:
            return f"invalid: {validation.joined(errors)}"
        return validation.human_crontab(values)


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(admin.ModelAdmin):
    """The whole trail, read-only: history is never edited."""

    list_display = ("when", "actor_name", "source", "action", "object_type", "object_repr")
    list_filter = ("action", "source", "object_type")
    search_fields = ("object_repr", "actor_name")
    fields = ("when", "actor_name", "source", "action", "object_type", "object_id",
              "object_repr", "changes")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="at", ordering="at")
    def when(self, change):
        return zoned(change.at)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


for model, model_admin in (
    (PeriodicTask, PeriodicTaskAdmin),
    (IntervalSchedule, IntervalScheduleAdmin),
    (CrontabSchedule, CrontabScheduleAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
