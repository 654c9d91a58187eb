"""What the podcast API reads and writes: sources, profiles, runs and their results."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from engines.errors import EngineError
from runs.api import RUN_FIELDS, RunCreateSerializer, RunSerializer

from . import voices
from .models import (
    SOURCE_MAX_CHARS,
    SOURCE_MAX_UPLOAD_BYTES,
    SPEAKERS_MAX,
    SPEAKERS_MIN,
    EpisodeProfile,
    PodcastResult,
    PodcastRun,
    Source,
    Speaker,
    SpeakerProfile,
)

SOURCES_PER_RUN_MAX = 50
TEXT_SUFFIXES = (".txt", ".md", ".markdown")


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of quietly turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# Sources


class SourceSerializer(serializers.ModelSerializer):
    """A source from JSON `{"title", "content"}` or a multipart upload of a .txt/.md `file`."""

    title = StrictCharField(max_length=200, required=False)
    content = StrictCharField(required=False, trim_whitespace=False)
    file = serializers.FileField(write_only=True, required=False)
    word_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Source
        fields: tuple[str, ...] = ("id", "title", "content", "file", "word_count", "created_at")
        read_only_fields = ("id", "word_count", "created_at")

    def validate_file(self, upload) -> str:
        if not upload.name.lower().endswith(TEXT_SUFFIXES):
            raise serializers.ValidationError("Upload a plain-text (.txt) or Markdown (.md) file.")
        if upload.size > SOURCE_MAX_UPLOAD_BYTES:
            limit_mb = SOURCE_MAX_UPLOAD_BYTES // (1024 * 1024)
            raise serializers.ValidationError(f"The file is larger than {limit_mb} MB.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise serializers.ValidationError("The file is not UTF-8 text.") from None
        self._upload_stem = Path(upload.name).stem
        return text

    def validate(self, attrs):
        uploaded = attrs.pop("file", None)
        if uploaded is not None and "content" in attrs:
            raise serializers.ValidationError(
                {"file": ["Send either content or a file, not both."]}
            )
        content = uploaded if uploaded is not None else attrs.get("content")
        field = "file" if uploaded is not None else "content"
        if content is None and self.instance is None:
            raise serializers.ValidationError({"content": ["Send content or upload a file."]})
        if content is not None:
            attrs["content"] = check_source_text(content, field)
        if not attrs.get("title") and self.instance is None:
            if uploaded is None:
                raise serializers.ValidationError({"title": ["This field is required."]})
            attrs["title"] = self._upload_stem[:200] or "Untitled"
        return attrs


def check_source_text(text: str, field: str) -> str:
    if not text.strip():
        raise serializers.ValidationError({field: ["The source has no text."]})
    if len(text) > SOURCE_MAX_CHARS:
        raise serializers.ValidationError(
            {field: [f"The text has {len(text):,} characters; the limit is {SOURCE_MAX_CHARS:,}."]}
        )
    return text


class SourceListSerializer(SourceSerializer):
    """Sources in a list: everything but the (possibly long) text."""

    class Meta(SourceSerializer.Meta):
        fields = ("id", "title", "word_count", "created_at")


# Profiles


class EpisodeProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = EpisodeProfile
        fields = (
            "slug",
            "name",
            "outline_style",
            "segments",
            "target_words",
            "intro",
            "outro",
            "language",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")


class SpeakerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Speaker
        fields = ("name", "role", "voice", "pitch", "rate")

    def validate_voice(self, voice: str) -> str:
        try:
            voices.check(voice)
        except EngineError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return voice


class SpeakerProfileSerializer(serializers.ModelSerializer):
    speakers = SpeakerSerializer(many=True)

    class Meta:
        model = SpeakerProfile
        fields = ("slug", "name", "speakers", "created_at", "updated_at")
        read_only_fields = ("created_at", "updated_at")

    def validate_speakers(self, speakers: list[dict]) -> list[dict]:
        if not SPEAKERS_MIN <= len(speakers) <= SPEAKERS_MAX:
            raise serializers.ValidationError(
                f"A profile needs {SPEAKERS_MIN} to {SPEAKERS_MAX} speakers, not {len(speakers)}."
            )
        names = [speaker["name"].casefold() for speaker in speakers]
        if len(set(names)) != len(names):
            raise serializers.ValidationError("Each speaker needs a different name.")
        return speakers

    @transaction.atomic
    def create(self, validated_data):
        speakers = validated_data.pop("speakers")
        profile = SpeakerProfile.objects.create(**validated_data)
        self._save_speakers(profile, speakers)
        return profile

    @transaction.atomic
    def update(self, profile, validated_data):
        speakers = validated_data.pop("speakers", None)
        profile = super().update(profile, validated_data)
        if speakers is not None:  # a PATCH without speakers keeps them
            profile.speakers.all().delete()
            self._save_speakers(profile, speakers)
        return profile

    @staticmethod
    def _save_speakers(profile: SpeakerProfile, speakers: list[dict]) -> None:
        Speaker.objects.bulk_create(
            Speaker(profile=profile, position=position, **speaker)
            for position, speaker in enumerate(speakers)
        )


# Podcast runs


class OwnSourceField(serializers.PrimaryKeyRelatedField):
    """A source id of the caller's own; another user's id reads as "does not exist"."""

    def get_queryset(self):
        user = getattr(self.context.get("request"), "user", None)
        if user is None or not user.is_authenticated:
            return Source.objects.none()
        return Source.objects.filter(owner=user)


class PodcastCreateSerializer(RunCreateSerializer):
    episode_profile = serializers.SlugRelatedField(
        slug_field="slug", queryset=EpisodeProfile.objects.all()
    )
    speaker_profile = serializers.SlugRelatedField(
        slug_field="slug", queryset=SpeakerProfile.objects.all()
    )
    episode_name = StrictCharField(max_length=200)
    source_ids = OwnSourceField(many=True, source="sources", allow_empty=False)
    briefing_suffix = StrictCharField(max_length=2000, required=False, allow_blank=True, default="")

    class Meta:
        model = PodcastRun
        fields = (
            "episode_profile",
            "speaker_profile",
            "episode_name",
            "source_ids",
            "briefing_suffix",
            "priority",
        )

    def validate_source_ids(self, sources: list[Source]) -> list[Source]:
        if len(sources) > SOURCES_PER_RUN_MAX:
            raise serializers.ValidationError(
                f"At most {SOURCES_PER_RUN_MAX} sources per episode, not {len(sources)}."
            )
        return list(dict.fromkeys(sources))  # a source listed twice counts once


class PodcastResultSerializer(serializers.ModelSerializer):
    audio_url = serializers.SerializerMethodField()
    processing_time = serializers.FloatField(source="processing_time_seconds")

    class Meta:
        model = PodcastResult
        fields = ("audio_url", "duration_seconds", "outline", "transcript", "processing_time")
        read_only_fields = fields

    def get_audio_url(self, result) -> str:
        return reverse("podcast-audio", args=[result.run_id], request=self.context.get("request"))


class PodcastSerializer(RunSerializer):
    episode_profile: serializers.SlugRelatedField[EpisodeProfile] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    speaker_profile: serializers.SlugRelatedField[SpeakerProfile] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    source_ids = serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(read_only=True), source="sources"
    )
    result = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        model = PodcastRun
        fields = (
            *RUN_FIELDS,
            "url",
            "episode_profile",
            "speaker_profile",
            "episode_name",
            "source_ids",
            "briefing_suffix",
            "result",
        )
        read_only_fields = fields

    @extend_schema_field(PodcastResultSerializer(allow_null=True))
    def get_result(self, run) -> dict | None:
        result = getattr(run, "result", None)  # absent until the run succeeds
        if result is None:
            return None
        return PodcastResultSerializer(result, context=self.context).data
