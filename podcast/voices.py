"""Which voice names a speaker may use, and which voice each speaker of an episode gets."""

from __future__ import annotations

from django.conf import settings

import engines
from engines import EngineConfig
from engines.interfaces import Speaker
from engines.remote import provider_voice, provider_voices, remote_voice
from engines.speech import voice_for_language


def engine_config() -> EngineConfig:
    """The engines web/settings.py chose; read per call, so a test's override applies."""
    return EngineConfig.from_settings(settings)


def check(voice: str) -> None:
    """Raise EngineError for a voice no configured engine can speak (`engines.check_voice`)."""
    engines.check_voice(engine_config(), voice)


def engine_voices(speakers: list[Speaker], spoken: str = "") -> dict[str, str]:
    """The voice name to send to the speech engine for each speaker, distinct where possible.

    Locally that is the speaker's eSpeak voice, switched to the eSpeak voice of the episode's
    language `spoken` when it cannot speak it (`en-us+m3` reads Chinese as `cmn+m3`: same
    variant, so the hosts stay apart); a profile that pins voices of that language keeps them.
    The provider has a few voices (OpenAI's six, or AI_VOICES) and maps eSpeak
    names onto them by a hash, so two speakers can land on one voice: the later one moves on to
    the next free voice, and an episode keeps its voices apart.
    """
    if not engine_config().remote_speech_only:
        return {speaker.name: voice_for_language(speaker.voice, spoken) for speaker in speakers}
    own = provider_voices(engine_config().remote)  # AI_VOICES, else OpenAI's six
    # A speaker who names one of the provider's voices keeps it; the others move around them.
    chosen = {s.name: v for s in speakers if (v := provider_voice(s.voice, own)) is not None}
    for speaker in speakers:
        if speaker.name in chosen:
            continue
        voice = remote_voice(speaker.voice, speaker.pitch, own)
        start = own.index(voice)
        for step in range(len(own)):
            candidate = own[(start + step) % len(own)]
            if candidate not in chosen.values():
                voice = candidate
                break
        chosen[speaker.name] = voice
    return {speaker.name: chosen[speaker.name] for speaker in speakers}
