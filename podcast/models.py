"""Podcast runs: profiles that shape an episode, the user's sources, the run and its result."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models

from engines.errors import EngineError
from engines.text import count_words
from runs.models import Run

# A source's text is capped so one request cannot fill the database; 500,000 characters is about
# 80,000 English words, so the 50,000-word episodes the issue asks for fit in one source.
SOURCE_MAX_CHARS = 500_000
# An uploaded file is read whole before decoding; UTF-8 Chinese takes 3 bytes a character.
SOURCE_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
SPEAKERS_MIN = 2
SPEAKERS_MAX = 6


class OutlineStyle(models.TextChoices):
    KEY_POINTS = "key_points", "Key points per section"
    NARRATIVE = "narrative", "One narrative arc"
    QUESTIONS = "questions", "Questions and answers"


class EpisodeProfile(models.Model):
    """How an episode is shaped: how many segments, how long, how it opens and closes."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    outline_style = models.CharField(
        max_length=16, choices=OutlineStyle, default=OutlineStyle.KEY_POINTS
    )
    segments = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    # Spoken words of the whole episode; about 150 words make a minute of eSpeak speech.
    target_words = models.PositiveIntegerField(
        default=400, validators=[MinValueValidator(50), MaxValueValidator(10_000)]
    )
    intro = models.TextField(blank=True, help_text="Said first. {episode} is the episode name.")
    outro = models.TextField(blank=True, help_text="Said last. {episode} is the episode name.")
    language = models.CharField(max_length=16, default="en", help_text="en, cmn, de, fr ...")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug


class SpeakerProfile(models.Model):
    """The voices of an episode: two or more speakers who take turns."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.slug


class Speaker(models.Model):
    """One voice of a speaker profile, in eSpeak NG terms (voice code, pitch 0-99, words/min)."""

    profile = models.ForeignKey(SpeakerProfile, on_delete=models.CASCADE, related_name="speakers")
    position = models.PositiveSmallIntegerField(default=0)  # speaking order
    name = models.CharField(max_length=64)
    role = models.CharField(max_length=120, blank=True)
    voice = models.CharField(max_length=32, default="en-us", help_text="en-us, en-gb+f3, cmn ...")
    pitch = models.PositiveSmallIntegerField(default=50, validators=[MaxValueValidator(99)])
    rate = models.PositiveSmallIntegerField(
        default=170, validators=[MinValueValidator(80), MaxValueValidator(450)]
    )

    class Meta:
        ordering = ("profile", "position", "id")
        constraints = [
            models.UniqueConstraint(fields=["profile", "name"], name="podcast_speaker_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.voice})"

    def clean(self) -> None:
        from . import voices  # engines load eSpeak; keep that out of model import time

        try:
            voices.check(self.voice)
        except EngineError as exc:
            raise ValidationError({"voice": str(exc)}) from None


class Source(models.Model):
    """A document a user gives as material for episodes."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="podcast_sources"
    )
    title = models.CharField(max_length=200)
    content = models.TextField(validators=[MaxLengthValidator(SOURCE_MAX_CHARS)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["owner", "created_at"], name="podcast_source_own_cr"),
            models.Index(fields=["created_at"], name="podcast_source_cr"),  # staff's list
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def word_count(self) -> int:
        """Words of a spaced language; each CJK character counts as one (Chinese has no spaces)."""
        return count_words(self.content)


class PodcastRun(Run):
    task_name = "podcast.generate"
    artifact_folder = "podcasts"  # podcasts/<id>.mp3, and podcasts/<id>/ the spoken lines

    # PROTECT: a profile in use by a run cannot vanish from under it.
    episode_profile = models.ForeignKey(EpisodeProfile, on_delete=models.PROTECT)
    speaker_profile = models.ForeignKey(SpeakerProfile, on_delete=models.PROTECT)
    episode_name = models.CharField(max_length=200)
    sources = models.ManyToManyField(Source, related_name="podcast_runs")
    # What the run was made from, as submitted: [{"id", "title"}]. Deleting a source removes it
    # from `sources` (the material), never from this record of the run.
    sources_snapshot = models.JSONField(default=list, blank=True)
    briefing_suffix = models.TextField(blank=True)

    def source_record(self) -> list[dict]:
        """[{"id", "title"}] of the sources the run was made from (runs older than the snapshot
        fall back to the sources still there)."""
        if self.sources_snapshot:
            return list(self.sources_snapshot)
        return [{"id": source.pk, "title": source.title} for source in self.sources.all()]


def audio_path(result: PodcastResult, filename: str) -> str:
    return f"podcasts/{result.run_id}.mp3"


class PodcastResult(models.Model):
    """What a run produced; one per run, rewritten in place by a repeated run."""

    run = models.OneToOneField(PodcastRun, on_delete=models.CASCADE, related_name="result")
    audio = models.FileField(upload_to=audio_path, max_length=255)
    duration_seconds = models.FloatField()
    outline = models.JSONField(default=list)  # [{"title", "points": [...]}]
    transcript = models.JSONField(default=list)  # [{"speaker", "voice", "text", "start", "end"}]
    processing_time_seconds = models.FloatField()  # claim to result, this attempt
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"result of {self.run_id}"
