"""Offline media and text engines, with optional OpenAI-compatible remote engines.

Callers pick an engine per capability and call it; the result has the same functions either way:

    from engines import get_image_engine, get_speech_engine, get_text_engine

    outline = get_text_engine().write_outline(sources, sections=3, language="en")
    seconds = get_speech_engine().synthesize(text, voice="en-us", pitch=50, rate=170, out_path=p)
    get_image_engine().draw_portrait("Ada", "a scientist in a red coat", portrait_path)

Media work that has no remote variant is called directly: `engines.audio.join_lines`,
`engines.audio.encode_mp3`, `engines.video.compose`, `engines.media.probe`.

The getters read the environment on every call (cheap), so a worker picks up changes on restart
and tests can set variables per test. They are functions, not `engines.text()`, because
`engines.text` is the module holding the local text engine.

Environment:
    TEXT_ENGINE, SPEECH_ENGINE, IMAGE_ENGINE  local | openai (default local)
    AI_BASE_URL         default https://api.openai.com/v1
    AI_API_KEY          sent as a Bearer token when set
    AI_CHAT_MODEL       default gpt-4o-mini
    AI_TTS_MODEL        default tts-1
    AI_IMAGE_MODEL      default dall-e-3
    AI_TIMEOUT_SECONDS  default 60
    ENGINE_FALLBACK     true | false (default false): a failed remote call is retried once with the
                        local engine, and a warning is logged
    ENGINE_FONT_PATH    optional TrueType font for subtitles and captions (e.g. a CJK font)

Errors: every engine raises `EngineError` for permanent failures and `TransientEngineError` (a
subclass) for ones worth retrying with backoff.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from engines import images, speech, text
from engines.errors import EngineError, TransientEngineError
from engines.remote import RemoteConfig, RemoteImageEngine, RemoteSpeechEngine, RemoteTextEngine

__all__ = [
    "EngineConfigError",
    "EngineError",
    "TransientEngineError",
    "get_image_engine",
    "get_speech_engine",
    "get_text_engine",
    "remote_config",
]

logger = logging.getLogger(__name__)

ENGINE_KINDS = ("local", "openai")


class EngineConfigError(EngineError):
    """An engine environment variable has a value the engines cannot use."""


def get_text_engine() -> Any:
    """The text engine: write_outline, write_transcript, write_video_script."""
    return _select("TEXT_ENGINE", text, RemoteTextEngine)


def get_speech_engine() -> Any:
    """The speech engine: synthesize, list_voices."""
    return _select("SPEECH_ENGINE", speech, RemoteSpeechEngine)


def get_image_engine() -> Any:
    """The image engine: draw_portrait, draw_scene."""
    return _select("IMAGE_ENGINE", images, RemoteImageEngine)


def remote_config() -> RemoteConfig:
    """Provider settings from the AI_* variables."""
    return RemoteConfig(
        base_url=os.environ.get("AI_BASE_URL") or "https://api.openai.com/v1",
        api_key=os.environ.get("AI_API_KEY", ""),
        chat_model=os.environ.get("AI_CHAT_MODEL") or "gpt-4o-mini",
        tts_model=os.environ.get("AI_TTS_MODEL") or "tts-1",
        image_model=os.environ.get("AI_IMAGE_MODEL") or "dall-e-3",
        timeout_seconds=_env_seconds("AI_TIMEOUT_SECONDS", 60.0),
    )


def _select(variable: str, local: Any, remote_class: type) -> Any:
    kind = os.environ.get(variable) or "local"
    if kind not in ENGINE_KINDS:
        raise EngineConfigError(f"{variable} must be 'local' or 'openai', not {kind!r}")
    if kind == "local":
        return local
    remote = remote_class(remote_config())
    return _Fallback(remote, local, variable) if _env_bool("ENGINE_FALLBACK", False) else remote


class _Fallback:
    """Calls the remote engine and, if it fails, the local one with the same arguments."""

    def __init__(self, remote: Any, local: Any, variable: str) -> None:
        self._remote, self._local, self._variable = remote, local, variable

    def __getattr__(self, name: str) -> Any:
        remote_call, local_call = getattr(self._remote, name), getattr(self._local, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return remote_call(*args, **kwargs)
            except EngineError as exc:
                logger.warning(
                    "%s remote %s failed, using the local engine: %s", self._variable, name, exc
                )
                return local_call(*args, **kwargs)

        return call


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw not in (None, "", "true", "false"):
        raise EngineConfigError(f"{name} must be 'true' or 'false', not {raw!r}")
    return default if not raw else raw == "true"


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise EngineConfigError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value
