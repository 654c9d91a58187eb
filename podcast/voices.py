"""Which voice names a speaker may use."""

from __future__ import annotations

import os

from engines import speech
from engines.remote import OPENAI_VOICES


def check(voice: str) -> None:
    """Raise EngineError for a voice no configured engine can speak.

    eSpeak voices always work (the remote engine maps them to one of its own); a provider's voice
    name only while the remote speech engine is chosen without the local fallback, which could not
    speak it.
    """
    remote_only = os.environ.get("SPEECH_ENGINE") == "openai" and (
        os.environ.get("ENGINE_FALLBACK") != "true"
    )
    if remote_only and voice.lower() in OPENAI_VOICES:
        return
    speech.check_voice(voice)
