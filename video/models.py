"""Video runs and their results: a script, a portrait per character, narration and one MP4."""

from __future__ import annotations

from django.db import models

from runs.models import Run

# Sizes the local composer renders well and players expect (16:9, even sides).
RESOLUTIONS = ("640x360", "854x480", "1280x720", "1920x1080")
FRAME_RATES = (24, 25, 30)
MAX_CHARACTERS = 4
MAX_PROMPT_CHARS = 2000
MAX_SCENES = 40
MAX_LINE_CHARS = 400


class VideoRun(Run):
    """A video to generate from a prompt (or a given script) and a cast of characters."""

    task_name = "video.generate"
    artifact_folder = "videos"

    title = models.CharField(max_length=200)
    prompt = models.TextField(blank=True)
    # A given script: [{"speaker", "text", "setting"?}]; empty means "write one from the prompt".
    script = models.JSONField(default=list, blank=True)
    # [{"name", "description", "voice"?}]
    characters = models.JSONField(default=list)
    resolution = models.CharField(
        max_length=16, choices=[(r, r) for r in RESOLUTIONS], default="1280x720"
    )
    fps = models.PositiveSmallIntegerField(choices=[(f, f) for f in FRAME_RATES], default=25)

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.resolution.split("x")
        return int(width), int(height)


def artifact_name(run_id: object, filename: str) -> str:
    """Storage name of one of the run's artifacts (`runs.artifacts`): all under its id."""
    return f"videos/{run_id}/{filename}"


class VideoResult(models.Model):
    """One per run, filled in part by part; a re-run overwrites it, never adds a second."""

    run = models.OneToOneField(VideoRun, on_delete=models.CASCADE, related_name="result")
    video = models.FileField(max_length=255, blank=True)
    audio = models.FileField(max_length=255, blank=True)  # the narration (WAV)
    # The script as scenes: [{"speaker", "text", "setting", "voice", "pitch", "start", "end"}]
    script = models.JSONField(default=list, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    processing_time_seconds = models.FloatField(null=True, blank=True)  # claim to MP4
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"result of {self.run_id}"


class CharacterImage(models.Model):
    """The portrait card of one character of a run."""

    result = models.ForeignKey(VideoResult, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=60)
    image = models.FileField(max_length=255)

    class Meta:
        ordering = ("position",)
        constraints = [
            models.UniqueConstraint(fields=["result", "position"], name="video_image_position")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.result.run_id})"
