"""Remote engines speaking the OpenAI-compatible HTTP API: chat completions, speech and images."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import uuid
import zlib
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageOps

from engines.config import RemoteConfig
from engines.errors import EngineError
from engines.images import finish_scene
from engines.interfaces import Character, Line, Scene, Section, Size, Speaker
from engines.media import audio_seconds, run_ffmpeg
from engines.text import condense, fit_outline
from engines.transport import request, stream
from engines.wav import layout, repair

OPENAI_VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
IMAGE_SIZE = "1024x1024"  # the one size every OpenAI-compatible image model accepts
SYSTEM_PROMPT = (
    "You write material for podcasts and videos. Answer with one JSON object only, "
    "exactly in the shape the user's 'reply_format' describes."
)
REPLY_FORMATS = {
    "outline": '{"sections": [{"title": str, "points": [str, ...]}, ...]}',
    "transcript": '{"lines": [{"speaker": str, "text": str}, ...]}',
    "video_script": '{"scenes": [{"character": str, "text": str, "description": str}, ...]}',
}


def post(config: RemoteConfig, path: str, payload: dict[str, Any]) -> httpx.Response:
    """POST JSON to the provider; its failures are sorted by `engines.transport`."""
    return request("POST", _url(config, path), json=payload, headers=_headers(config),
                   timeout=config.timeout_seconds)  # fmt: skip


def post_to_file(config: RemoteConfig, path: str, payload: dict[str, Any], out_path: Path) -> None:
    """POST JSON and write the answer to `out_path` as it arrives (a streamed body has no end
    known in advance); a half-received answer is never left under that name."""
    partial = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with (
            stream("POST", _url(config, path), json=payload, headers=_headers(config),
                   timeout=config.timeout_seconds) as answer,
            partial.open("wb") as out,
        ):  # fmt: skip
            for chunk in answer.iter_bytes():
                out.write(chunk)
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)


def _url(config: RemoteConfig, path: str) -> str:
    return config.base_url.rstrip("/") + path


def _headers(config: RemoteConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}


def user_message(task: str, fields: dict[str, Any]) -> str:
    return json.dumps(
        {"task": task, "reply_format": REPLY_FORMATS[task], **fields}, ensure_ascii=False
    )


def room_for(config: RemoteConfig, task: str, fields: dict[str, Any]) -> int:
    """Characters left in the context budget for the text the request leaves out of `fields`."""
    return config.context_chars - len(SYSTEM_PROMPT) - len(user_message(task, fields))


def chat_json(config: RemoteConfig, task: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Ask the chat model for a JSON object for one task and return it parsed."""
    user = user_message(task, fields)
    payload = {
        "model": config.chat_model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
        ],
        "response_format": {"type": "json_object"},
    }
    reply = _json_body(post(config, "/chat/completions", payload))
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise EngineError("chat reply has no choices[0].message.content") from exc
    return _parse_content(content)


class RemoteTextEngine:
    """write_outline / write_transcript / write_video_script through chat completions."""

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config

    def write_outline(
        self, sources: list[str], *, sections: int, language: str, points: int = 3
    ) -> list[Section]:
        fields: dict[str, Any] = {
            "sources": [], "sections": sections, "points_per_section": points,
            "language": language,
        }  # fmt: skip
        # Long sources are condensed to their key sentences so that the model reads all of what
        # it gets: a server with a small context would cut the message silently instead.
        room = room_for(self.config, "outline", fields)
        fields["sources"] = condense(sources, room, language=language)
        data = chat_json(self.config, "outline", fields)
        return [
            Section(_text(s, "title"), [str(p) for p in _list(s, "points")])
            for s in _list(data, "sections")
        ]

    def write_transcript(
        self,
        outline: list[Section],
        speakers: list[Speaker],
        *,
        intro: str,
        outro: str,
        briefing_suffix: str,
        target_words: int,
        language: str,
    ) -> list[Line]:
        fields: dict[str, Any] = {
            "outline": [], "speakers": [{"name": s.name, "role": s.role} for s in speakers],
            "intro": intro, "outro": outro, "briefing": briefing_suffix,
            "target_words": target_words, "language": language,
        }  # fmt: skip
        room = room_for(self.config, "transcript", fields)
        fields["outline"] = [
            {"title": s.title, "points": s.points} for s in fit_outline(outline, room)
        ]
        data = chat_json(self.config, "transcript", fields)
        names = [s.name for s in speakers]
        lines = [(_text(item, "speaker"), _text(item, "text")) for item in _list(data, "lines")]
        # A model may invent or misspell a name; give such lines to the speakers in turn.
        return [
            Line(who if who in names else names[i % len(names)], text)
            for i, (who, text) in enumerate(lines)
        ]

    def write_video_script(
        self, prompt: str, characters: list[Character], *, seed: str, scenes: int | None = None
    ) -> list[Scene]:
        fields: dict[str, Any] = {
            "prompt": "", "characters": characters, "seed": seed, "scenes": scenes
        }  # fmt: skip
        room = room_for(self.config, "video_script", fields)
        fields["prompt"] = " ".join(condense([prompt], room, language=""))
        data = chat_json(self.config, "video_script", fields)
        return [
            Scene(_text(s, "character"), _text(s, "text"), _text(s, "description"))
            for s in _list(data, "scenes")
        ]


class RemoteSpeechEngine:
    """synthesize through POST /audio/speech, asking for WAV.

    The answer is written to disk as it streams in; its length is counted from the decoded
    samples (PyAV), never read from the header, which a streaming server fills with 0xFFFFFFFF;
    then the header is given the true sizes (or a non-PCM answer converted to 16-bit PCM), so
    joining and mixing see the real length too.
    """

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config

    def synthesize(self, text: str, *, voice: str, pitch: int, rate: int, out_path: Path) -> float:
        payload = {
            "model": self.config.tts_model,
            "input": text,
            "voice": remote_voice(voice, pitch, provider_voices(self.config)),
            "response_format": "wav",
        }
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        post_to_file(self.config, "/audio/speech", payload, out_path)
        return settle_audio(out_path)

    def list_voices(self) -> list[str]:
        return list(provider_voices(self.config))


def settle_audio(path: Path) -> float:
    """Make a provider's audio a 16-bit PCM WAV with true sizes; return its decoded length."""
    try:
        found = layout(path)
    except (OSError, ValueError) as exc:
        raise EngineError(f"speech reply is not readable: {exc}") from exc
    if found is not None and found.is_pcm16:
        repair(path)
    else:  # MP3, float or 24-bit WAV...: what joining expects is 16-bit PCM
        converted = path.with_name(f".{path.stem}.pcm.wav")
        try:
            run_ffmpeg(["-i", str(path), "-vn", "-c:a", "pcm_s16le", str(converted)])
            converted.replace(path)
        except EngineError as exc:
            size = path.stat().st_size
            raise EngineError(f"speech reply is not audio ({size} bytes): {exc}") from exc
        finally:
            converted.unlink(missing_ok=True)
    seconds = audio_seconds(path)
    if seconds <= 0:
        raise EngineError("speech reply holds no audio")
    return seconds


class RemoteImageEngine:
    """draw_portrait / draw_scene through POST /images/generations (b64_json)."""

    def __init__(self, config: RemoteConfig, *, font_path: str = "") -> None:
        self.config = config
        self.font_path = font_path  # for the subtitle drawn over the provider's picture

    def draw_portrait(
        self, name: str, description: str, out_path: Path, *, size: Size = (512, 512)
    ) -> Path:
        prompt = f"Portrait of {name}: {description}. Friendly illustration, plain background."
        return _save(ImageOps.fit(self._generate(prompt), size), out_path)

    def draw_scene(
        self,
        text: str,
        description: str,
        *,
        portrait: Path | None,
        subtitle: str,
        out_path: Path,
        size: Size = (1280, 720),
    ) -> Path:
        prompt = f"{description}. Illustration for the line: {text}. No text or letters."
        background = ImageOps.fit(self._generate(prompt), size)
        scene = finish_scene(
            background, portrait=portrait, subtitle=subtitle, font_path=self.font_path
        )
        return _save(scene, out_path)

    def _generate(self, prompt: str) -> Image.Image:
        payload = {
            "model": self.config.image_model,
            "prompt": prompt,
            "n": 1,
            "size": IMAGE_SIZE,
            "response_format": "b64_json",
        }
        reply = _json_body(post(self.config, "/images/generations", payload))
        try:
            image = Image.open(io.BytesIO(base64.b64decode(reply["data"][0]["b64_json"])))
            image.load()
        except (KeyError, IndexError, TypeError, binascii.Error, OSError) as exc:
            raise EngineError("image reply has no readable data[0].b64_json") from exc
        return image.convert("RGB")


def provider_voices(config: RemoteConfig | None) -> tuple[str, ...]:
    """The provider's voice names: AI_VOICES when configured, else OpenAI's six."""
    return (config.voices if config else ()) or OPENAI_VOICES


def provider_voice(voice: str, voices: tuple[str, ...] = OPENAI_VOICES) -> str | None:
    """`voice` as the provider spells it, when it is one of its voices."""
    return next((v for v in voices if v.lower() == voice.lower()), None)


def remote_voice(voice: str, pitch: int, voices: tuple[str, ...] = OPENAI_VOICES) -> str:
    """A provider voice: passed through when it is one, else picked stably from the eSpeak voice
    and pitch."""
    if (own := provider_voice(voice, voices)) is not None:
        return own
    # Two hosts with the same eSpeak voice but different pitches still get different voices.
    return voices[zlib.crc32(f"{voice}:{pitch}".encode()) % len(voices)]


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise EngineError(f"provider answered with non-JSON: {response.text[:200]!r}") from exc
    if not isinstance(body, dict):
        raise EngineError("provider answered with JSON that is not an object")
    return body


def _parse_content(content: Any) -> dict[str, Any]:
    if not isinstance(content, str):
        raise EngineError("chat reply content is not text")
    # Some models wrap JSON in a ```json fence even when asked for a bare object.
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", content.strip())
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EngineError(f"chat reply is not JSON: {content[:200]!r}") from exc
    if not isinstance(data, dict):
        raise EngineError("chat reply JSON is not an object")
    return data


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list) or not value:
        raise EngineError(f"chat reply needs a non-empty list '{key}'")
    return value


def _text(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise EngineError(f"chat reply item needs a text '{key}'")
    return value


def _save(image: Image.Image, out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path, format="PNG")
    return out_path
