"""Admin: podcast runs with their player and transcript; profiles and sources editable."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

import events.admin
from runs.admin import LIFECYCLE_FIELDS, RunAdmin
from runs.admin_paging import EstimatedCountPaginator

from .models import EpisodeProfile, PodcastRun, Source, Speaker, SpeakerProfile

INPUT_FIELDS = ("episode_profile", "speaker_profile", "episode_name", "sources", "briefing_suffix")
RESULT_FIELDS = ("audio_player", "duration", "processing_time", "outline_view", "transcript_view")


@admin.register(PodcastRun)
class PodcastRunAdmin(RunAdmin):
    api_basename = "podcast"  # /api/podcasts/<id>/ and its events/
    list_display = RunAdmin.columns_with("episode_name")
    search_fields = (*RunAdmin.search_fields, "episode_name")
    readonly_fields = (*LIFECYCLE_FIELDS, *INPUT_FIELDS, *RESULT_FIELDS, "history")
    fieldsets = (
        ("Episode", {"fields": INPUT_FIELDS}),
        ("Result", {"fields": RESULT_FIELDS}),
        ("Lifecycle", {"fields": LIFECYCLE_FIELDS}),
        ("History", {"fields": ("history",)}),
    )
    history = events.admin.history

    @admin.display(description="audio")
    def audio_player(self, run):
        if self.result_of(run) is None:
            return "-"
        # The API's audio view checks the admin's session like any request, so no public path.
        src = reverse("podcast-audio", args=[run.pk])
        return format_html(
            '<audio controls preload="metadata" src="{}"></audio> <a href="{}">download</a>',
            src,
            src,
        )

    @admin.display(description="duration")
    def duration(self, run):
        result = self.result_of(run)
        return f"{result.duration_seconds:.1f} s" if result else "-"

    @admin.display(description="processing time")
    def processing_time(self, run):
        result = self.result_of(run)
        return f"{result.processing_time_seconds:.1f} s" if result else "-"

    @admin.display(description="outline")
    def outline_view(self, run):
        result = self.result_of(run)
        if result is None:
            return "-"
        return format_html_join(
            "",
            "<p><strong>{}</strong><br>{}</p>",
            ((section["title"], " / ".join(section["points"])) for section in result.outline),
        )

    @admin.display(description="transcript")
    def transcript_view(self, run):
        result = self.result_of(run)
        if result is None:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}-{}</td><td><strong>{}</strong></td><td>{}</td></tr>",
            (
                # Formatted first: format_html escapes its arguments into text.
                (f"{line['start']:.1f}", f"{line['end']:.1f}", line["speaker"], line["text"])
                for line in result.transcript
            ),
        )
        return format_html(
            "<table><tr><th>s</th><th>speaker</th><th>line</th></tr>{}</table>", rows
        )


@admin.register(EpisodeProfile)
class EpisodeProfileAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "outline_style", "segments", "target_words", "language")
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}


class SpeakerInline(admin.TabularInline):
    model = Speaker
    fields = ("position", "name", "role", "voice", "pitch", "rate")
    extra = 0
    min_num = 2  # a dialogue needs two voices
    validate_min = True


@admin.register(SpeakerProfile)
class SpeakerProfileAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "voices")
    search_fields = ("slug", "name")
    inlines = (SpeakerInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("speakers")

    @admin.display(description="speakers")
    def voices(self, profile):
        return ", ".join(str(speaker) for speaker in profile.speakers.all())


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "word_count", "created_at")
    search_fields = ("title", "owner__username")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_filter = ("created_at",)
