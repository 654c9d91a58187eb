"""Which voice names a speaker may use, and which voice each speaker of an episode gets."""

from __future__ import annotations

from django.conf import settings

import engines
from engines import EngineConfig
from engines.interfaces import Speaker
from engines.remote import OPENAI_VOICES, remote_voice


def engine_config() -> EngineConfig:
    """The engines web/settings.py chose; read per call, so a test's override applies."""
    return EngineConfig.from_settings(settings)


def check(voice: str) -> None:
    """Raise EngineError for a voice no configured engine can speak (`engines.check_voice`)."""
    engines.check_voice(engine_config(), voice)


def engine_voices(speakers: list[Speaker]) -> dict[str, str]:
    """The voice name to send to the speech engine for each speaker, distinct where possible.

    Locally that is the speaker's eSpeak voice. The provider has only six voices and maps eSpeak
    names onto them by a hash, so two speakers can land on one voice: the later one moves on to
    the next free voice, and an episode keeps its voices apart.
    """
    if not engine_config().remote_speech_only:
        return {speaker.name: speaker.voice for speaker in speakers}
    chosen: dict[str, str] = {}
    for speaker in speakers:
        voice = remote_voice(speaker.voice, speaker.pitch)
        start = OPENAI_VOICES.index(voice)
        for step in range(len(OPENAI_VOICES)):
            candidate = OPENAI_VOICES[(start + step) % len(OPENAI_VOICES)]
            if candidate not in chosen.values():
                voice = candidate
                break
        chosen[speaker.name] = voice
    return chosen
