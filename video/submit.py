"""The video's reader for the lean submit (runs/submit.py): a plain `POST /api/videos/`.

It takes a body only when VideoCreateSerializer would take it unchanged, and makes of it what the
serializer would, with the serializer's own cleaning of the cast and the script
(`clean_character`, `clean_scene`); anything else is handed to the DRF path, which names the
field. A video names nothing in the database, so the caller's SELECT reads nothing more.
"""

from __future__ import annotations

from rest_framework import serializers

from runs.models import Priority
from runs.submit import HandOver, Lookup, NewRun, plain_text

from .models import FRAME_RATES, MAX_CHARACTERS, MAX_PROMPT_CHARS, MAX_SCENES, RESOLUTIONS
from .serializers import clean_character, clean_scene

TITLE_MAX = 200  # VideoRun.title's max_length, which the serializer's field takes


def read_new_video(data: dict) -> Lookup:
    priority = data.get("priority", Priority.NORMAL)
    resolution, fps = data.get("resolution", "1280x720"), data.get("fps", 25)
    if not isinstance(priority, str) or priority not in Priority.values:
        raise HandOver("the priority")
    if not isinstance(resolution, str) or resolution not in RESOLUTIONS:
        raise HandOver("the resolution")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps not in FRAME_RATES:
        raise HandOver("the frame rate")
    title = plain_text(data.get("title"), TITLE_MAX, blank=False)
    prompt = plain_text(data.get("prompt", ""), MAX_PROMPT_CHARS, blank=True)
    characters = cleaned(data.get("characters"), MAX_CHARACTERS, clean_character)
    script = cleaned(data["script"], MAX_SCENES, clean_scene) if "script" in data else []
    names = [character["name"] for character in characters]
    if len(set(names)) != len(names) or bool(prompt) == bool(script):
        raise HandOver("the same name twice, or not one of a prompt and a script")
    if {scene["speaker"] for scene in script} - set(names):
        raise HandOver("a speaker who is not in the cast")
    values = {
        "title": title,
        "characters": characters,
        "resolution": resolution,
        "fps": fps,
        "priority": priority,
    }
    if "prompt" in data:  # absent: the model's default, as the serializer leaves it
        values["prompt"] = prompt
    if script:
        values["script"] = script
    return Lookup(make=lambda rows: NewRun(values=values))


def cleaned(items, limit: int, clean) -> list[dict]:
    """A list of 1 to `limit` objects, each cleaned as the serializer cleans it."""
    if not isinstance(items, list) or not 0 < len(items) <= limit:
        raise HandOver("not a list of the right length")
    try:
        return [clean(number, item) for number, item in enumerate(items, 1)]
    except serializers.ValidationError:
        raise HandOver("the DRF path names what is wrong") from None
