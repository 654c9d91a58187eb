"""What a text, speech or image engine offers, and the data they take and return.

The local engines are modules (`engines.text`, `engines.speech`) or small classes
(`engines.images.LocalImageEngine`); the remote ones are classes in `engines.remote`. Both
satisfy these protocols, so a caller never knows which one it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NotRequired, Protocol, TypedDict

Size = tuple[int, int]


@dataclass
class Section:
    title: str
    points: list[str] = field(default_factory=list)


@dataclass
class Speaker:
    name: str
    role: str
    voice: str
    pitch: int = 50  # eSpeak pitch, 0-99
    rate: int = 170  # words per minute


@dataclass
class Line:
    speaker: str
    text: str


@dataclass
class Scene:
    character: str
    text: str
    description: str


class Character(TypedDict):
    """A video's character as the API stores it (JSON)."""

    name: str
    description: NotRequired[str]
    voice: NotRequired[str]


class TextEngine(Protocol):
    def write_outline(
        self, sources: list[str], *, sections: int, language: str, points: int = 3
    ) -> list[Section]: ...

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
    ) -> list[Line]: ...

    def write_video_script(
        self, prompt: str, characters: list[Character], *, seed: str, scenes: int | None = None
    ) -> list[Scene]: ...


class SpeechEngine(Protocol):
    def synthesize(
        self, text: str, *, voice: str, pitch: int, rate: int, out_path: Path
    ) -> float: ...

    def list_voices(self) -> list[str]: ...


class ImageEngine(Protocol):
    def draw_portrait(
        self, name: str, description: str, out_path: Path, *, size: Size = (512, 512)
    ) -> Path: ...

    def draw_scene(
        self,
        text: str,
        description: str,
        *,
        portrait: Path | None,
        subtitle: str,
        out_path: Path,
        size: Size = (1280, 720),
    ) -> Path: ...
