"""django-celery-beat's admin plus next run times, last result, audited actions and the trail."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult
from kombu.utils.json import loads

from . import audit
from .schedule_models import ScheduleChange
from .schedules import next_run_times, schedule_zone

TRAIL_LENGTH = 20


class AuditedAdminMixin:
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


class PeriodicTaskAdmin(AuditedAdminMixin, beat_admin.PeriodicTaskAdmin):
    # No date drill-down: it converts time zones in the database (CONVERT_TZ), which fails on a
    # MySQL or MariaDB without time zone tables. The date filters work everywhere.
    date_hierarchy = None
    list_display = (
        "name",
        "enabled",
        "task",
        "scheduler",
        "next_run",
        "last_result_link",
        "last_run_at",
        "total_run_count",
    )
    readonly_fields = (
        *beat_admin.PeriodicTaskAdmin.readonly_fields,
        "next_runs",
        "last_result_link",
        "audit_trail",
    )
    fieldsets = (
        ("Status", {"fields": ("next_runs", "last_result_link")}),
        *beat_admin.PeriodicTaskAdmin.fieldsets,
        ("Audit trail", {"fields": ("audit_trail",)}),
    )
    actions = ("enable_tasks", "disable_tasks", "run_tasks")

    @admin.display(description="next run")
    def next_run(self, task):
        times = next_run_times(task, count=1)
        return f"{times[0]:%Y-%m-%d %H:%M:%S %Z}" if times else "—"

    @admin.display(description="next run times")
    def next_runs(self, task):
        if task.pk is None:
            return "—"
        times = next_run_times(task)
        if not times:
            return "disabled" if not task.enabled else "—"
        zone = schedule_zone(task)
        return format_html(
            "{}<br>in {}",
            format_html_join(
                "", "{}<br>", ((f"{when:%Y-%m-%d %H:%M:%S %Z (UTC%z)}",) for when in times)
            ),
            zone.key,
        )

    @admin.display(description="last result")
    def last_result_link(self, task):
        result = last_result(task) if task.pk else None
        if result is None:
            return "—"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        done = f"{result.date_done:%Y-%m-%d %H:%M:%S}" if result.date_done else ""
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
                    f"{row.at:%Y-%m-%d %H:%M:%S}",
                    row.actor_name or "—",
                    row.source,
                    row.action,
                    describe(row),
                )
                for row in rows
            ),
        )
        return format_html(
            '<table class="audit-trail"><tr><th>when (UTC)</th><th>who</th><th>via</th>'
            "<th>what</th><th>changes</th></tr>{}</table>",
            body,
        )

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        fields = {"enabled": enabled} if enabled else {"enabled": False, "last_run_at": None}
        changed = audit.record_bulk(queryset.exclude(enabled=enabled), **fields)
        PeriodicTasks.update_changed()  # bulk updates send no signal; beat must re-read
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} task(s) {state}.", messages.SUCCESS)

    @admin.action(description="Run selected tasks now")
    def run_tasks(self, request, queryset):
        tasks = list(queryset)
        super().run_tasks(request, queryset)
        self.celery_app.loader.import_default_modules()
        if all(task.task in self.celery_app.tasks for task in tasks):  # else none was sent
            for task in tasks:
                audit.record(task, ScheduleChange.Action.RUN_NOW, {"kwargs": loads(task.kwargs)})


def describe(row: ScheduleChange) -> str:
    changes = "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in row.changes.items())
    return f"{row.object_type} {row.object_repr}: {changes}" if changes else row.object_repr


class IntervalScheduleAdmin(AuditedAdminMixin, beat_admin.IntervalScheduleAdmin):
    pass


class CrontabScheduleAdmin(AuditedAdminMixin, beat_admin.CrontabScheduleAdmin):
    pass


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(admin.ModelAdmin):
    """The whole trail, read-only: history is never edited."""

    list_display = ("at", "actor_name", "source", "action", "object_type", "object_repr")
    list_filter = ("action", "source", "object_type")
    search_fields = ("object_repr", "actor_name")

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
