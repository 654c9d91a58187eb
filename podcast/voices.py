"""Which voice names a speaker may use, and which voice each speaker of an episode gets."""

from __future__ import annotations

import os

from engines import speech
from engines.remote import OPENAI_VOICES, remote_voice
from engines.text import Speaker


def remote_only() -> bool:
    """True when speech goes to the provider with no local fallback (which needs eSpeak names)."""
    return os.environ.get("SPEECH_ENGINE") == "openai" and (
        os.environ.get("ENGINE_FALLBACK") != "true"
    )


def check(voice: str) -> None:
    """Raise EngineError for a voice no configured engine can speak.

    eSpeak voices always work (the remote engine maps them to one of its own); a provider's voice
    name only while the remote speech engine is chosen without the local fallback.
    """
    if remote_only() and voice.lower() in OPENAI_VOICES:
        return
    speech.check_voice(voice)


def engine_voices(speakers: list[Speaker]) -> dict[str, str]:
    """The voice name to send to the speech engine for each speaker, distinct where possible.

    Locally that is the speaker's eSpeak voice. The provider has only six voices and maps eSpeak
    names onto them by a hash, so two speakers can land on one voice: the later one moves on to
    the next free voice, and an episode keeps its voices apart.
    """
    if not remote_only():
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
