"""Video runs in the admin: the lifecycle columns of RunAdmin, a player and the portraits."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

import events.admin
from runs.admin import LIFECYCLE_FIELDS, RunAdmin

from .models import VideoRun

INPUT_FIELDS = ("title", "prompt", "script", "characters", "resolution", "fps", "priority")


@admin.register(VideoRun)
class VideoRunAdmin(RunAdmin):
    api_basename = "video"  # /api/videos/<id>/ and its events/
    list_display = RunAdmin.columns_with("title")
    search_fields = (*RunAdmin.search_fields, "title")
    readonly_fields = (
        *LIFECYCLE_FIELDS,
        *INPUT_FIELDS,
        "player",
        "portraits",
        "result_summary",
        "history",
    )
    fieldsets = (
        (None, {"fields": ("title", "resolution", "fps", "priority", "characters")}),
        ("Result", {"fields": ("player", "portraits", "result_summary")}),
        ("Input", {"fields": ("prompt", "script"), "classes": ("collapse",)}),
        ("Lifecycle", {"fields": LIFECYCLE_FIELDS}),
        ("History", {"fields": ("history",)}),
    )
    history = events.admin.history

    @admin.display(description="video")
    def player(self, run):
        result = self.result_of(run)
        if result is None or not result.video:
            return "No video yet."
        # The API's media view streams it; staff may see every run's files.
        src = reverse("video-video-file", args=[run.pk])
        return format_html(
            '<video src="{}" controls preload="metadata" style="max-width:640px;width:100%">'
            "</video>",
            src,
        )

    @admin.display(description="characters")
    def portraits(self, run):
        result = self.result_of(run)
        images = list(result.images.all()) if result else []
        if not images:
            return "No images yet."
        return format_html_join(
            "",
            '<figure style="display:inline-block;margin:0 8px 0 0;text-align:center">'
            '<img src="{}" alt="{}" style="width:128px;height:128px;border-radius:8px">'
            "<figcaption>{}</figcaption></figure>",
            (
                (reverse("video-image-file", args=[run.pk, i.position]), i.name, i.name)
                for i in images
            ),
        )

    @admin.display(description="result")
    def result_summary(self, run):
        result = self.result_of(run)
        if result is None or result.duration_seconds is None:
            return "-"
        return (
            f"{result.width}x{result.height}, {result.duration_seconds:.1f} s, "
            f"{len(result.script)} scenes, made in {result.processing_time_seconds or 0:.1f} s"
        )
