"""Which engines to use and how to reach the provider: plain values, handed in by the caller.

web/settings.py reads the environment once, with the project's strict parsers, and the kinds'
steps pass `EngineConfig.from_settings(django.conf.settings)` to the engine getters; the engines
themselves import no Django and read no environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from engines.errors import EngineConfigError

EngineKind = Literal["local", "openai"]
ENGINE_KINDS: dict[str, EngineKind] = {"local": "local", "openai": "openai"}
# Speech has a third: Piper, an optional offline neural voice (engines/piper.py).
SpeechKind = Literal["local", "openai", "piper"]
SPEECH_KINDS: dict[str, SpeechKind] = {"local": "local", "openai": "openai", "piper": "piper"}


@dataclass(frozen=True)
class RemoteConfig:
    """An OpenAI-compatible provider: where it is, the key, the models and the patience.

    `voices` are the provider's own voice names (empty: OpenAI's six); `context_chars` is how
    much text one chat request may hold before the sources are condensed to fit.
    """

    base_url: str
    api_key: str
    chat_model: str
    tts_model: str
    image_model: str
    timeout_seconds: float
    voices: tuple[str, ...] = ()
    context_chars: int = 6000


class EngineSettings(Protocol):
    """The names web/settings.py defines for the engines (django.conf.settings has them)."""

    TEXT_ENGINE: str
    SPEECH_ENGINE: str
    IMAGE_ENGINE: str
    ENGINE_FALLBACK: bool
    ENGINE_FONT_PATH: str
    AI_BASE_URL: str
    AI_API_KEY: str
    AI_CHAT_MODEL: str
    AI_TTS_MODEL: str
    AI_IMAGE_MODEL: str
    AI_TIMEOUT_SECONDS: float
    AI_VOICES: tuple[str, ...]
    AI_CONTEXT_CHARS: int


@dataclass(frozen=True)
class EngineConfig:
    """The engine per capability; `fallback` retries a failed remote call with the local engine.

    `remote` is needed only when some capability is "openai"; `font_path` is an optional
    TrueType font for captions and subtitles (e.g. a CJK font).
    """

    text: EngineKind = "local"
    speech: SpeechKind = "local"
    image: EngineKind = "local"
    fallback: bool = False
    font_path: str = ""
    remote: RemoteConfig | None = None

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> EngineConfig:
        return cls(
            text=engine_kind("TEXT_ENGINE", settings.TEXT_ENGINE),
            speech=speech_kind(settings.SPEECH_ENGINE),
            image=engine_kind("IMAGE_ENGINE", settings.IMAGE_ENGINE),
            fallback=settings.ENGINE_FALLBACK,
            font_path=settings.ENGINE_FONT_PATH,
            remote=RemoteConfig(
                base_url=settings.AI_BASE_URL,
                api_key=settings.AI_API_KEY,
                chat_model=settings.AI_CHAT_MODEL,
                tts_model=settings.AI_TTS_MODEL,
                image_model=settings.AI_IMAGE_MODEL,
                timeout_seconds=settings.AI_TIMEOUT_SECONDS,
                voices=tuple(settings.AI_VOICES),
                context_chars=settings.AI_CONTEXT_CHARS,
            ),
        )

    @property
    def remote_speech_only(self) -> bool:
        """Speech goes to the provider with no local fallback (which would need eSpeak names)."""
        return self.speech == "openai" and not self.fallback


def speech_kind(value: str) -> SpeechKind:
    try:
        return SPEECH_KINDS[value]
    except KeyError:
        raise EngineConfigError(
            f"SPEECH_ENGINE must be local, openai or piper, not {value!r}"
        ) from None


def engine_kind(name: str, value: str) -> EngineKind:
    """web/settings.py has checked the value already; a test's override is checked here."""
    try:
        return ENGINE_KINDS[value]
    except KeyError:
        raise EngineConfigError(f"{name} must be local or openai, not {value!r}") from None
