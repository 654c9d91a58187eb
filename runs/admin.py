"""Admin bases every run kind uses: status badge, progress bar, stage, cancel and retry actions."""

from __future__ import annotations

from typing import ClassVar

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
    """What every run kind's admin shares; a kind adds its inputs and how to show its result."""

    list_display: tuple[str, ...] = (
        "id",
        "owner",
        "status_badge",
        "progress_bar",
        "stage",
        "attempt",
        "created_at",
    )
    # No date_hierarchy: its drill-down converts time zones in the database (CONVERT_TZ), which
    # fails on a MySQL or MariaDB without time zone tables; the created_at filter works everywhere.
    list_filter = ("status", "priority", "created_at")
    search_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "owner__username",
        "task_id",
        "idempotency_key",
    )
    readonly_fields: ClassVar[tuple[str, ...]] = LIFECYCLE_FIELDS
    actions = ("cancel_runs", "retry_runs", "redispatch_runs")

    @classmethod
    def columns_with(cls, title: str) -> tuple[str, ...]:
        """The shared list columns with the kind's own title column after the owner."""
        return (*cls.list_display[:2], title, *cls.list_display[2:])

    def has_add_permission(self, request) -> bool:
        return False  # runs are submitted through the API, which validates and dispatches them

    def get_queryset(self, request):
        # The owner column and the result each row shows, in the page's one query: a queryset's
        # own select_related would switch list_select_related off.
        related = ["owner"] + (["result"] if self.has_result() else [])
        return super().get_queryset(request).select_related(*related)

    def has_result(self) -> bool:
        return any(rel.name == "result" for rel in self.model._meta.related_objects)

    @staticmethod
    def result_of(run):
        """The run's result row, or None before the run has one."""
        return getattr(run, "result", None)

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
        done = sum(lifecycle.request_cancel(run, by="staff") for run in queryset)
        self.message_user(request, f"Cancel requested for {done} run(s).", messages.SUCCESS)

    @admin.action(description="Retry selected failed, cancelled or timed-out runs")
    def retry_runs(self, request, queryset):
        done = sum(lifecycle.retry(run, by="staff") for run in queryset)
        self.message_user(request, f"{done} run(s) sent round again.", messages.SUCCESS)

    @admin.action(description="Dispatch selected pending or queued runs again")
    def redispatch_runs(self, request, queryset):
        runs = queryset.filter(status__in=lifecycle.CLAIMABLE)
        done = sum(lifecycle.dispatch(run) for run in runs)
        self.message_user(request, f"{done} run(s) dispatched.", messages.SUCCESS)
