"""Offline media and text engines, with optional OpenAI-compatible remote engines.

Callers pick an engine per capability for a configuration and call it; the engine offers the same
functions either way (the protocols in `engines.interfaces`):

    config = EngineConfig.from_settings(django.conf.settings)   # in the caller, not here
    outline = get_text_engine(config).write_outline(sources, sections=3, language="en")
    seconds = get_speech_engine(config).synthesize(text, voice="en-us", pitch=50, rate=170,
                                                   out_path=p)
    get_image_engine(config).draw_portrait("Ada", "a scientist in a red coat", portrait_path)

Media work that has no remote variant is called directly: `engines.audio.join_lines`,
`engines.audio.encode_mp3`, `engines.video.compose`, `engines.media.probe`.

The engines import no Django and read no environment: web/settings.py reads TEXT_ENGINE,
SPEECH_ENGINE, IMAGE_ENGINE, ENGINE_FALLBACK, ENGINE_FONT_PATH and the AI_* variables once (see
.env.example), and `EngineConfig.from_settings` carries them here.

Errors: every engine raises `EngineError` for permanent failures and `TransientEngineError` (a
subclass) for ones worth retrying with backoff; `engines.transport` holds the rule for HTTP.
"""

from __future__ import annotations

from engines import images, piper, speech, text
from engines.config import EngineConfig, RemoteConfig
from engines.errors import EngineConfigError, EngineError, TransientEngineError
from engines.fallback import FallbackImageEngine, FallbackSpeechEngine, FallbackTextEngine
from engines.interfaces import ImageEngine, SpeechEngine, TextEngine
from engines.remote import (
    RemoteImageEngine,
    RemoteSpeechEngine,
    RemoteTextEngine,
    provider_voice,
    provider_voices,
)

__all__ = [
    "EngineConfig",
    "EngineConfigError",
    "EngineError",
    "TransientEngineError",
    "check_voice",
    "get_image_engine",
    "get_speech_engine",
    "get_text_engine",
]


def get_text_engine(config: EngineConfig) -> TextEngine:
    """The text engine: write_outline, write_transcript, write_video_script."""
    if config.text == "local":
        return text
    remote = RemoteTextEngine(remote_config(config, "TEXT_ENGINE"))
    return FallbackTextEngine(remote, text) if config.fallback else remote


def get_speech_engine(config: EngineConfig) -> SpeechEngine:
    """The speech engine: synthesize, list_voices."""
    if config.speech == "local":
        return speech
    if config.speech == "piper":
        return piper.PiperSpeechEngine()
    remote = RemoteSpeechEngine(remote_config(config, "SPEECH_ENGINE"))
    return FallbackSpeechEngine(remote, speech) if config.fallback else remote


def get_image_engine(config: EngineConfig) -> ImageEngine:
    """The image engine: draw_portrait, draw_scene."""
    local = images.LocalImageEngine(config.font_path)
    if config.image == "local":
        return local
    remote = RemoteImageEngine(remote_config(config, "IMAGE_ENGINE"), font_path=config.font_path)
    return FallbackImageEngine(remote, local) if config.fallback else remote


def check_voice(config: EngineConfig, voice: str) -> None:
    """Raise EngineError for a voice no configured speech engine can speak.

    eSpeak voices always work (the remote engine maps them to one of its own); a provider's voice
    name (OpenAI's six, or AI_VOICES) only while the remote speech engine is chosen without the
    local fallback, and then it passes through to the provider unchanged.
    """
    if config.remote_speech_only and provider_voice(voice, provider_voices(config.remote)):
        return
    if config.speech == "piper" and voice.lower() == piper.VOICE.lower():
        return
    speech.check_voice(voice)


def remote_config(config: EngineConfig, variable: str) -> RemoteConfig:
    if config.remote is None:
        raise EngineConfigError(f"{variable} is openai, but no provider (AI_BASE_URL) is given")
    return config.remote
