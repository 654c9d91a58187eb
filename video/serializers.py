"""Video API input and output. Every rule names its field in the 400 answer."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from engines import EngineConfig, EngineError, check_voice
from runs.api import RUN_FIELDS, RunCreateSerializer, RunSerializer

from .models import (
    FRAME_RATES,
    MAX_CHARACTERS,
    MAX_LINE_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SCENES,
    RESOLUTIONS,
    VideoResult,
    VideoRun,
)

MAX_NAME_CHARS = 60
MAX_DESCRIPTION_CHARS = 300
MAX_SETTING_CHARS = 300
MAX_VOICE_CHARS = 40


def text_schema(limit: int, *, required: bool = False) -> dict:
    return {"type": "string", "maxLength": limit, **({"minLength": 1} if required else {})}


# What the validation below enforces, told to the OpenAPI schema (clean_character, clean_scene).
CHARACTERS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_CHARACTERS,
    "items": {
        "type": "object",
        "properties": {
            "name": text_schema(MAX_NAME_CHARS, required=True),
            "description": text_schema(MAX_DESCRIPTION_CHARS),
            "voice": text_schema(MAX_VOICE_CHARS),
        },
        "required": ["name"],
    },
    "description": "The cast, each with a different name; `voice` an eSpeak NG voice.",
}
SCRIPT_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_SCENES,
    "items": {
        "type": "object",
        "properties": {
            "speaker": text_schema(MAX_NAME_CHARS, required=True),
            "text": text_schema(MAX_LINE_CHARS, required=True),
            "setting": text_schema(MAX_SETTING_CHARS),
        },
        "required": ["speaker", "text"],
    },
    "description": "Instead of a prompt: the scenes, each spoken by one of the characters.",
}


@extend_schema_field(CHARACTERS_SCHEMA)
class CharactersField(serializers.JSONField):
    pass


@extend_schema_field(SCRIPT_SCHEMA)
class ScriptField(serializers.JSONField):
    pass


class VideoCreateSerializer(RunCreateSerializer):
    prompt = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_PROMPT_CHARS, trim_whitespace=True
    )
    script = ScriptField(required=False)
    characters = CharactersField()
    resolution = serializers.ChoiceField(
        choices=RESOLUTIONS,
        default="1280x720",
        error_messages={"invalid_choice": f"Use one of {', '.join(RESOLUTIONS)}."},
    )
    fps = serializers.ChoiceField(
        choices=FRAME_RATES,
        default=25,
        error_messages={"invalid_choice": f"Use one of {', '.join(map(str, FRAME_RATES))}."},
    )

    class Meta:
        model = VideoRun
        fields = ("title", "prompt", "script", "characters", "resolution", "fps", "priority")

    def validate_characters(self, characters) -> list[dict]:
        if not isinstance(characters, list) or not characters:
            raise serializers.ValidationError("Give a list of 1 to 4 characters.")
        if len(characters) > MAX_CHARACTERS:
            raise serializers.ValidationError(
                f"At most {MAX_CHARACTERS} characters, not {len(characters)}."
            )
        cleaned = [clean_character(number, c) for number, c in enumerate(characters, 1)]
        names = [c["name"] for c in cleaned]
        if len(set(names)) != len(names):
            raise serializers.ValidationError("Character names must differ.")
        return cleaned

    def validate_script(self, script) -> list[dict]:
        if not isinstance(script, list) or not script:
            raise serializers.ValidationError(
                'Give a list of scenes like [{"speaker": "Ada", "text": "Hello."}].'
            )
        if len(script) > MAX_SCENES:
            raise serializers.ValidationError(f"At most {MAX_SCENES} scenes, not {len(script)}.")
        return [clean_scene(number, scene) for number, scene in enumerate(script, 1)]

    def validate(self, attrs):
        prompt, script = attrs.get("prompt", ""), attrs.get("script")
        if bool(prompt) == bool(script):
            raise serializers.ValidationError(
                {"prompt": ["Give either a prompt or a script (one of the two)."]}
            )
        names = {c["name"] for c in attrs.get("characters", [])}
        strangers = sorted({s["speaker"] for s in script or []} - names)
        if strangers:
            raise serializers.ValidationError(
                {"script": [f"Speaker {', '.join(strangers)} is not among the characters."]}
            )
        return attrs


def clean_character(number: int, character) -> dict:
    where = f"Character {number}"
    if not isinstance(character, dict):
        raise serializers.ValidationError(f"{where} must be an object with a name.")
    name = text_value(character, "name", where, MAX_NAME_CHARS, required=True)
    cleaned = {
        "name": name,
        "description": text_value(character, "description", where, MAX_DESCRIPTION_CHARS),
    }
    voice = text_value(character, "voice", where, MAX_VOICE_CHARS)
    if voice:
        check_character_voice(voice, where)
        cleaned["voice"] = voice
    return cleaned


def check_character_voice(voice: str, where: str) -> None:
    """The same rule as a podcast speaker's voice (`engines.check_voice`)."""
    try:
        check_voice(EngineConfig.from_settings(settings), voice)
    except EngineError as exc:
        raise serializers.ValidationError(f"{where}: {exc}.") from None


def clean_scene(number: int, scene) -> dict:
    where = f"Scene {number}"
    if not isinstance(scene, dict):
        raise serializers.ValidationError(f"{where} must be an object with a speaker and text.")
    return {
        "speaker": text_value(scene, "speaker", where, MAX_NAME_CHARS, required=True),
        "text": text_value(scene, "text", where, MAX_LINE_CHARS, required=True),
        "setting": text_value(scene, "setting", where, MAX_SETTING_CHARS),
    }


def text_value(data: dict, key: str, where: str, limit: int, *, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise serializers.ValidationError(f"{where}: {key} must be text.")
    value = value.strip()
    if required and not value:
        raise serializers.ValidationError(f"{where}: {key} is required.")
    if len(value) > limit:
        raise serializers.ValidationError(f"{where}: {key} is longer than {limit} characters.")
    return value


class VideoImageSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class VideoResultSerializer(serializers.ModelSerializer):
    video_url = serializers.SerializerMethodField()
    audio_url = serializers.SerializerMethodField()
    images = serializers.SerializerMethodField()
    processing_time = serializers.FloatField(source="processing_time_seconds", allow_null=True)

    class Meta:
        model = VideoResult
        fields = (
            "video_url",
            "audio_url",
            "images",
            "script",
            "duration_seconds",
            "width",
            "height",
            "processing_time",
        )
        read_only_fields = fields

    def get_video_url(self, result: VideoResult) -> str | None:
        return self.link(result, "video-file") if result.video else None

    def get_audio_url(self, result: VideoResult) -> str | None:
        return self.link(result, "audio-file") if result.audio else None

    @extend_schema_field(VideoImageSerializer(many=True))
    def get_images(self, result: VideoResult) -> list[dict[str, str]]:
        return [
            {"name": image.name, "url": self.link(result, "image-file", position=image.position)}
            for image in result.images.all()
        ]

    def link(self, result: VideoResult, name: str, **kwargs: object) -> str:
        return reverse(
            f"video-{name}",
            kwargs={"pk": result.run_id, **kwargs},
            request=self.context.get("request"),
        )


class VideoSerializer(RunSerializer):
    result = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        model = VideoRun
        fields = (
            *RUN_FIELDS,
            "url",
            "title",
            "prompt",
            "script",
            "characters",
            "resolution",
            "fps",
            "result",
        )
        read_only_fields = fields

    @extend_schema_field(VideoResultSerializer(allow_null=True))
    def get_result(self, run: VideoRun) -> dict | None:
        result = getattr(run, "result", None)  # absent until the script is written
        if result is None:
            return None
        return VideoResultSerializer(result, context=self.context).data
