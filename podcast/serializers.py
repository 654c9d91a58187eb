"""What the podcast API reads and writes: sources, profiles, runs and their results."""

from __future__ import annotations

from pathlib import Path

from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import transaction
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse
from rest_framework.utils import html

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


@extend_schema_field({"type": "string", "maxLength": SOURCE_MAX_CHARS})
class SourceTextField(StrictCharField):
    """A source's text; its limit is checked by check_source_text, with the count in the message."""


# Sources


class SourceSerializer(serializers.ModelSerializer):
    """A source from JSON `{"title", "content"}` or a multipart upload of a .txt/.md `file`."""

    title = StrictCharField(max_length=200, required=False)
    content = SourceTextField(required=False, trim_whitespace=False)
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
        if "\x00" in text:
            raise serializers.ValidationError("The file holds NUL characters; it is not text.")
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


class SpeakerListSerializer(serializers.ListSerializer):
    """Counts the speakers before any of them is checked: a long list costs nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Told to the OpenAPI schema as minItems/maxItems (the count is checked below first).
        self.validators = [
            *self.validators,
            MinLengthValidator(SPEAKERS_MIN),
            MaxLengthValidator(SPEAKERS_MAX),
        ]

    def to_internal_value(self, data):
        if isinstance(data, list) and not SPEAKERS_MIN <= len(data) <= SPEAKERS_MAX:
            raise serializers.ValidationError(
                [f"A profile needs {SPEAKERS_MIN} to {SPEAKERS_MAX} speakers, not {len(data)}."]
            )
        return super().to_internal_value(data)


class SpeakerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Speaker
        fields = ("name", "role", "voice", "pitch", "rate")
        list_serializer_class = SpeakerListSerializer

    def validate_voice(self, voice: str) -> str:
        try:
            voices.check(voice)
        except EngineError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return voice


class SpeakerProfileSerializer(serializers.ModelSerializer):
    speakers = SpeakerListSerializer(
        child=SpeakerSerializer(), min_length=SPEAKERS_MIN, max_length=SPEAKERS_MAX
    )

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


PK_MAX = 2**63 - 1  # BigAutoField


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": PK_MAX},
        "minItems": 1,
        "maxItems": SOURCES_PER_RUN_MAX,
        "description": f"Ids of your own sources, 1 to {SOURCES_PER_RUN_MAX}.",
    }
)
class OwnSourcesField(serializers.Field):
    """Ids of the caller's own sources, at most SOURCES_PER_RUN_MAX, looked up in ONE query after
    the cap is checked; another user's id reads as "does not exist". Returns the sources in the
    order given, each once."""

    default_error_messages = {
        "not_a_list": 'Expected a list of items but got type "{input_type}".',
        "empty": "This list may not be empty.",
        "too_many": f"At most {SOURCES_PER_RUN_MAX} sources per episode, not {{count}}.",
        "incorrect_type": "Incorrect type. Expected pk value, received {data_type}.",
        "does_not_exist": 'Invalid pk "{pk_value}" - object does not exist.',
    }

    def get_value(self, dictionary):
        if html.is_html_input(dictionary):  # a form: source_ids=1&source_ids=2
            if self.field_name not in dictionary:
                return serializers.empty
            return dictionary.getlist(self.field_name)
        return dictionary.get(self.field_name, serializers.empty)

    def to_internal_value(self, data) -> list[Source]:
        if isinstance(data, (str, dict)) or not isinstance(data, (list, tuple)):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not data:
            self.fail("empty")
        if len(data) > SOURCES_PER_RUN_MAX:  # before anything is looked up
            self.fail("too_many", count=len(data))
        ids = list(dict.fromkeys(self.to_pk(item) for item in data))
        user = getattr(self.context.get("request"), "user", None)
        found: dict[int, Source] = {}
        if user is not None and user.is_authenticated:
            found = {s.pk: s for s in Source.objects.filter(owner=user, pk__in=ids).only("title")}
        for pk in ids:
            if pk not in found:
                self.fail("does_not_exist", pk_value=pk)
        return [found[pk] for pk in ids]

    def to_pk(self, item) -> int:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            self.fail("incorrect_type", data_type=type(item).__name__)
        if isinstance(item, str) and not (item.isascii() and item.isdigit() and len(item) < 20):
            self.fail("incorrect_type", data_type="str")
        pk = int(item)
        if not 1 <= pk <= PK_MAX:
            self.fail("does_not_exist", pk_value=pk)
        return pk

    def to_representation(self, value) -> list[int]:
        return [source.pk for source in value]


class PodcastCreateSerializer(RunCreateSerializer):
    episode_profile = serializers.SlugRelatedField(
        slug_field="slug", queryset=EpisodeProfile.objects.all()
    )
    speaker_profile = serializers.SlugRelatedField(
        slug_field="slug", queryset=SpeakerProfile.objects.all()
    )
    episode_name = StrictCharField(max_length=200)
    source_ids = OwnSourcesField(source="sources")
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

    def validate(self, attrs):
        # The run's own record of its sources, kept when a source is deleted later.
        attrs["sources_snapshot"] = [{"id": s.pk, "title": s.title} for s in attrs["sources"]]
        return attrs


class PodcastResultSerializer(serializers.ModelSerializer):
    audio_url = serializers.SerializerMethodField()
    processing_time = serializers.FloatField(source="processing_time_seconds")

    class Meta:
        model = PodcastResult
        fields = ("audio_url", "duration_seconds", "outline", "transcript", "processing_time")
        read_only_fields = fields

    def get_audio_url(self, result) -> str:
        return reverse("podcast-audio", args=[result.run_id], request=self.context.get("request"))


class RunSourceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class PodcastSerializer(RunSerializer):
    episode_profile: serializers.SlugRelatedField[EpisodeProfile] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    speaker_profile: serializers.SlugRelatedField[SpeakerProfile] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    source_ids = serializers.SerializerMethodField()
    sources = serializers.SerializerMethodField()
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
            "sources",
            "briefing_suffix",
            "result",
        )
        read_only_fields = fields

    def get_source_ids(self, run: PodcastRun) -> list[int]:
        """The ids the run was made from, also after a source is deleted."""
        return [source["id"] for source in run.source_record()]

    @extend_schema_field(RunSourceSerializer(many=True))
    def get_sources(self, run: PodcastRun) -> list[dict]:
        """The sources the run was made from, with their titles at submission."""
        return run.source_record()

    @extend_schema_field(PodcastResultSerializer(allow_null=True))
    def get_result(self, run) -> dict | None:
        result = getattr(run, "result", None)  # absent until the run succeeds
        if result is None:
            return None
        return PodcastResultSerializer(result, context=self.context).data
