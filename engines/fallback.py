"""ENGINE_FALLBACK: call the remote engine and, when it fails, the local one with the same input."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from engines.errors import EngineError
from engines.interfaces import (
    Character,
    ImageEngine,
    Line,
    Scene,
    Section,
    Size,
    Speaker,
    SpeechEngine,
    TextEngine,
)

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def either(
    capability: str,
    remote: Callable[P, R],
    local: Callable[P, R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """`remote(...)`, or `local(...)` with a warning when the remote call raised EngineError."""
    try:
        return remote(*args, **kwargs)
    except EngineError as exc:
        name = getattr(remote, "__name__", "call")
        logger.warning("%s remote %s failed, using the local engine: %s", capability, name, exc)
        return local(*args, **kwargs)


class FallbackTextEngine:
    def __init__(self, remote: TextEngine, local: TextEngine) -> None:
        self.remote, self.local = remote, local

    def write_outline(
        self, sources: list[str], *, sections: int, language: str, points: int = 3
    ) -> list[Section]:
        return either(
            "TEXT_ENGINE",
            self.remote.write_outline,
            self.local.write_outline,
            sources,
            sections=sections,
            language=language,
            points=points,
        )

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
        return either(
            "TEXT_ENGINE",
            self.remote.write_transcript,
            self.local.write_transcript,
            outline,
            speakers,
            intro=intro,
            outro=outro,
            briefing_suffix=briefing_suffix,
            target_words=target_words,
            language=language,
        )

    def write_video_script(
        self, prompt: str, characters: list[Character], *, seed: str, scenes: int | None = None
    ) -> list[Scene]:
        return either(
            "TEXT_ENGINE",
            self.remote.write_video_script,
            self.local.write_video_script,
            prompt,
            characters,
            seed=seed,
            scenes=scenes,
        )


class FallbackSpeechEngine:
    def __init__(self, remote: SpeechEngine, local: SpeechEngine) -> None:
        self.remote, self.local = remote, local

    def synthesize(self, text: str, *, voice: str, pitch: int, rate: int, out_path: Path) -> float:
        return either(
            "SPEECH_ENGINE",
            self.remote.synthesize,
            self.local.synthesize,
            text,
            voice=voice,
            pitch=pitch,
            rate=rate,
            out_path=out_path,
        )

    def list_voices(self) -> list[str]:
        return either("SPEECH_ENGINE", self.remote.list_voices, self.local.list_voices)


class FallbackImageEngine:
    def __init__(self, remote: ImageEngine, local: ImageEngine) -> None:
        self.remote, self.local = remote, local

    def draw_portrait(
        self, name: str, description: str, out_path: Path, *, size: Size = (512, 512)
    ) -> Path:
        return either(
            "IMAGE_ENGINE",
            self.remote.draw_portrait,
            self.local.draw_portrait,
            name,
            description,
            out_path,
            size=size,
        )

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
        return either(
            "IMAGE_ENGINE",
            self.remote.draw_scene,
            self.local.draw_scene,
            text,
            description,
            portrait=portrait,
            subtitle=subtitle,
            out_path=out_path,
            size=size,
        )
