"""Admin bases every run kind uses: status badge, progress bar, stage, cancel and retry actions.

A run's change page is live (`admin/runs/run_change_form.html`, `runs/static/runs/live.js`): a
panel with the status, a progress bar, the stage and message, follows the run's event stream
(`GET /api/<kind>/<id>/events/`, Server-Sent Events, same origin with the admin's session) and
falls back to reading `GET /api/<kind>/<id>/` every 2 s when the stream cannot be opened. Cancel
and Retry buttons post to the admin's own views (CSRF-protected, for staff with the model's
change permission). A page with nothing editable shows no Save button, and every time is shown
with its zone's name ("2026-12-01 14:03:05 Asia/Shanghai").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from . import lifecycle
from .admin_paging import EstimatedCountPaginator, IndexedSortChangeList
from .models import ACTIVE, RETRYABLE, TERMINAL, RunStatus

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


def zoned(moment: datetime | None) -> str:
    """A time in the site's zone, with the zone's name: "2026-12-01 14:03:05 Asia/Shanghai"."""
    if moment is None:
        return "-"
    if timezone.is_naive(moment):
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    try:
        local = timezone.localtime(moment)
    except OverflowError:  # near the year 9999 the local time may not exist: say it in UTC
        return f"{moment:%Y-%m-%d %H:%M:%S %Z}"
    return f"{local:%Y-%m-%d %H:%M:%S} {timezone.get_current_timezone_name()}"


def zoned_display(name: str, label: str) -> Callable[[Any], str]:
    """A read-only admin column for the time field `name`, shown by `zoned` (CSS class and
    ordering stay the field's)."""

    def show(obj: Any) -> str:
        return zoned(getattr(obj, name))

    show.__name__ = name
    show.short_description = label  # type: ignore[attr-defined]
    show.admin_order_field = name  # type: ignore[attr-defined]
    return show


class RunAdmin(admin.ModelAdmin):
    """What every run kind's admin shares; a kind adds its inputs and how to show its result.

    `api_basename` is the kind's API route name ("podcast" for `/api/podcasts/`): the live page
    reads the run's events and state there.
    """

    api_basename: ClassVar[str] = ""
    change_form_template = "admin/runs/run_change_form.html"

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
    # At a million runs: no exact COUNT of the table (an estimate), none of the unfiltered table
    # beside a filtered list, and the related rows chosen in get_queryset only.
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_select_related = ()
    # Only columns an index sorts: a click on progress or stage would sort every row of the
    # table. Status and owner are narrowed with the filters and the search instead.
    sortable_by = ("id", "created_at")

    @classmethod
    def columns_with(cls, title: str) -> tuple[str, ...]:
        """The shared list columns with the kind's own title column after the owner."""
        return (*cls.list_display[:2], title, *cls.list_display[2:])

    def has_add_permission(self, request) -> bool:
        return False  # runs are submitted through the API, which validates and dispatches them

    # Times with their zone's name, whatever time fields a kind adds (run_at...).

    def zoned_fields(self) -> dict[str, Callable[[Any], str]]:
        cached = self.__dict__.get("_zoned_fields")
        if cached is None:
            cached = {
                field.name: zoned_display(field.name, str(field.verbose_name))
                for field in self.model._meta.get_fields()
                if isinstance(field, models.DateTimeField)
            }
            self.__dict__["_zoned_fields"] = cached
        return cached

    def with_zones(self, names):
        shown = self.zoned_fields()
        return type(names)(shown.get(n, n) if isinstance(n, str) else n for n in names)

    def get_readonly_fields(self, request, obj=None):
        return self.with_zones(list(super().get_readonly_fields(request, obj)))

    def get_fieldsets(self, request, obj=None):
        return [
            (title, {**options, "fields": self.with_zones(list(options["fields"]))})
            for title, options in super().get_fieldsets(request, obj)
        ]

    def get_list_display(self, request):
        return self.with_zones(list(super().get_list_display(request)))

    def get_sortable_by(self, request):
        return self.with_zones(list(super().get_sortable_by(request)))

    def get_changelist(self, request, **kwargs):
        return IndexedSortChangeList

    # The live change page: its panel, the Cancel and Retry buttons, no Save without a field.

    def live_urls(self, run) -> dict[str, str]:
        """The run's API URL and event stream (empty when the kind names no API route)."""
        try:
            detail = reverse(f"{self.api_basename}-detail", args=[run.pk])
        except NoReverseMatch:
            return {"api_url": "", "events_url": ""}
        return {"api_url": detail, "events_url": f"{detail}events/"}

    def may_act(self, request, run=None) -> bool:
        """Cancel and retry change the run: the model's change permission."""
        return super().has_change_permission(request, run)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        editable = bool(context["adminform"].form.fields) or any(
            inline.has_add_permission or inline.has_change_permission
            for inline in context.get("inline_admin_formsets", [])
        )
        if not editable:
            context.update(
                show_save=False, show_save_and_continue=False, show_save_and_add_another=False
            )
        if obj is not None:
            info = self.opts.app_label, self.opts.model_name
            context["live"] = {
                "run_id": str(obj.pk),
                "status": obj.status,
                "status_label": obj.get_status_display(),
                "progress": obj.progress,
                "stage": obj.stage,
                "message": obj.message,
                "attempt": obj.attempt,
                "active": obj.status in ACTIVE,
                "retryable": obj.status in RETRYABLE,
                "terminal": [str(status) for status in TERMINAL],
                "active_statuses": [str(status) for status in ACTIVE],
                "retryable_statuses": [str(status) for status in RETRYABLE],
                "colours": {str(k): v for k, v in BADGE_COLOURS.items()},
                "labels": {str(value): str(label) for value, label in RunStatus.choices},
                "may_act": self.may_act(request, obj),
                "cancel_url": reverse("admin:{}_{}_cancel".format(*info), args=[obj.pk]),
                "retry_url": reverse("admin:{}_{}_retry".format(*info), args=[obj.pk]),
                **self.live_urls(obj),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        own = [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name="{}_{}_cancel".format(*info),
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="{}_{}_retry".format(*info),
            ),
        ]
        return own + super().get_urls()

    def acted_on(self, request, object_id: str):
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("No such run.")
        if not self.may_act(request, run):
            raise PermissionDenied
        return run

    def back_to(self, run) -> HttpResponseRedirect:
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[run.pk]))

    def cancel_view(self, request, object_id: str):
        run = self.acted_on(request, object_id)
        if lifecycle.request_cancel(run, by="staff"):
            self.message_user(request, "Cancel requested.", messages.SUCCESS)
        else:
            self.message_user(request, f"The run is already {run.status}.", messages.WARNING)
        return self.back_to(run)

    def retry_view(self, request, object_id: str):
        run = self.acted_on(request, object_id)
        if lifecycle.retry(run, by="staff"):
            self.message_user(request, "Sent round again.", messages.SUCCESS)
        else:
            self.message_user(request, f"A {run.status} run cannot be retried.", messages.WARNING)
        return self.back_to(run)

    def get_queryset(self, request):
        # The owners in one query of their own, not joined: an INNER JOIN lets MariaDB start
        # from the small user table and sort the whole run table. The result is a LEFT JOIN,
        # which keeps the runs first, read newest first from the created_at index.
        runs = super().get_queryset(request).prefetch_related("owner")
        return runs.select_related("result") if self.has_result() else runs

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
