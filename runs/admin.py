"""Admin bases every run kind uses: status badge, progress bar, stage, cancel and retry actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from . import lifecycle
from .models import RunStatus

BADGE_COLOURS = {
    RunStatus.PENDING: "#888",
    RunStatus.QUEUED: "#6a5acd",
    RunStatus.RUNNING: "#1e90ff",
    RunStatus.WAITING: "#daa520",
    RunStatus.SUCCEEDED: "#2e8b57",
    RunStatus.FAILED: "#c0392b",
    RunStatus.CANCELLED: "#555",
    RunStatus.TIMED_OUT: "#d35400",
}

LIFECYCLE_FIELDS = (
    "id",
    "owner",
    "status",
    "progress",
    "stage",
    "message",
    "error",
    "attempt",
    "max_attempts",
    "task_id",
    "idempotency_key",
    "cancel_requested",
    "remote_job_id",
    "created_at",
    "queued_at",
    "started_at",
    "heartbeat_at",
    "finished_at",
)


class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status_badge", "progress_bar", "stage", "attempt", "created_at")
    # No date_hierarchy: its drill-down converts time zones in the database (CONVERT_TZ), which
    # fails on a MySQL or MariaDB without time zone tables; the created_at filter works everywhere.
    list_filter = ("status", "priority", "created_at")
    search_fields = ("id", "owner__username", "task_id", "idempotency_key")
    readonly_fields = LIFECYCLE_FIELDS
    list_select_related = ("owner",)
    actions = ("cancel_runs", "retry_runs", "redispatch_runs")

    @admin.display(description="status", ordering="status")
    def status_badge(self, run):
        colour = BADGE_COLOURS.get(run.status, "#888")
        return format_html(
            '<span style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>',
            colour,
            run.get_status_display(),
        )

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, run):
        return format_html(
            '<progress value="{}" max="100" title="{}%"></progress> {}%',
            run.progress,
            run.progress,
            run.progress,
        )

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        done = sum(lifecycle.request_cancel(run) for run in queryset)
        self.message_user(request, f"Cancel requested for {done} run(s).", messages.SUCCESS)

    @admin.action(description="Retry selected failed, cancelled or timed-out runs")
    def retry_runs(self, request, queryset):
        done = sum(lifecycle.retry(run) for run in queryset)
        self.message_user(request, f"{done} run(s) sent round again.", messages.SUCCESS)

    @admin.action(description="Dispatch selected pending or queued runs again")
    def redispatch_runs(self, request, queryset):
        runs = queryset.filter(status__in=lifecycle.CLAIMABLE)
        done = sum(lifecycle.dispatch(run) for run in runs)
        self.message_user(request, f"{done} run(s) dispatched.", messages.SUCCESS)


# The schedules admin: periodic tasks with next runs, last result and audit trail.
from . import schedules_admin  # noqa: E402, F401
