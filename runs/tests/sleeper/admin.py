"""The test-only run kind in the admin, so the live run page is tested without media."""

from django.contrib import admin

from runs.admin import LIFECYCLE_FIELDS, RunAdmin

from .models import SleepRun


@admin.register(SleepRun)
class SleepRunAdmin(RunAdmin):
    api_basename = "sleep-run"  # /api/test/sleep-runs/<id>/
    list_display = RunAdmin.columns_with("steps")
    fields = (*LIFECYCLE_FIELDS, "steps", "seconds_per_step")
    readonly_fields = fields
