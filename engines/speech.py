"""Local speech: eSpeak NG through ctypes (espeakng-loader), or a system espeak-ng if present."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import wave
from functools import cache
from pathlib import Path
from typing import TypedDict

import espeakng_loader

from engines.cancel import CancelToken, token_or_current
from engines.errors import EngineError
from engines.language import voice_for
from engines.wav import duration as wav_file_duration

# Constants from espeak-ng/speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE = 1
PARAM_PITCH = 3
EE_OK = 0

MIN_RATE, MAX_RATE = 80, 450  # words per minute eSpeak accepts
SAMPLE_WIDTH = 2  # eSpeak produces 16-bit mono PCM

SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # packed list, not one C string
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
    ]


class _Loaded(TypedDict, total=False):
    pid: int  # the process that initialised the library: a forked child starts again
    lib: ctypes.CDLL
    sample_rate: int


# eSpeak keeps one global voice and callback per process, so every synthesis holds this lock.
_lock = threading.Lock()
_state: _Loaded = {}


def synthesize(
    text: str,
    *,
    voice: str,
    pitch: int,
    rate: int,
    out_path: Path,
    cancel: CancelToken | None = None,
) -> float:
    """Write `text` spoken by an eSpeak voice to a mono WAV; return its duration in seconds.

    A cancel token (`cancel`, else the caller's active one) stops the synthesis within one audio
    chunk and raises `engines.cancel.Cancelled`.
    """
    token = token_or_current(cancel)
    token.check()
    text = text.strip()
    if not text:
        raise EngineError("cannot synthesise empty text")
    pitch = max(0, min(99, int(pitch)))
    rate = max(MIN_RATE, min(MAX_RATE, int(rate)))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if _system_espeak():
        _synthesize_cli(text, voice, pitch, rate, out_path, token)
    else:
        _synthesize_library(text, voice, pitch, rate, out_path, token)
    return wav_duration(out_path)


def list_voices() -> list[str]:
    """Names `synthesize` accepts: eSpeak language codes such as en, en-us, en-gb, cmn, de, fr."""
    return sorted(_voice_names())


def check_voice(voice: str) -> None:
    """Raise EngineError for a voice eSpeak does not know; a `+variant` suffix is allowed."""
    if voice.split("+", 1)[0].lower() not in _voice_names():
        raise EngineError(f"unknown voice {voice!r}; try one of en, en-us, en-gb, cmn, de, fr")


def voice_for_language(voice: str, spoken: str) -> str:
    """The eSpeak voice that speaks `spoken` in `voice`'s variant (`engines.language.voice_for`);
    a voice eSpeak does not know is left as it is, so speaking fails naming it."""
    try:
        check_voice(voice)
    except EngineError:
        return voice
    return voice_for(voice, spoken)


def wav_duration(path: Path) -> float:
    """Duration of a PCM WAV from the samples it holds (`engines.wav`: never a streamed header's
    0xFFFFFFFF claim)."""
    return wav_file_duration(path)


@cache
def _system_espeak() -> str | None:
    return shutil.which("espeak-ng")


def _synthesize_cli(
    text: str, voice: str, pitch: int, rate: int, out_path: Path, token: CancelToken
) -> None:
    check_voice(voice)
    # Text goes through stdin so a line starting with "-" is never read as an option.
    command = [
        _system_espeak() or "espeak-ng",
        "-v",
        voice,
        "-p",
        str(pitch),
        "-s",
        str(rate),
        "-w",
        str(out_path),
        "--stdin",
    ]
    with (
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process,
        token.watching(process),
    ):
        _, stderr = process.communicate(text.encode())
    if process.returncode != 0:
        raise EngineError(f"espeak-ng failed: {stderr.decode(errors='replace').strip()}")


def _synthesize_library(
    text: str, voice: str, pitch: int, rate: int, out_path: Path, token: CancelToken
) -> None:
    lib = _library()
    check_voice(voice)
    with _lock, wave.open(str(out_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(_state["sample_rate"])

        # Samples go straight to disk as eSpeak produces them, so memory stays flat. Returning 1
        # tells eSpeak to stop: a cancelled run ends within one chunk (tens of milliseconds).
        def collect(samples, count, _events):
            if token.cancelled:
                return 1
            if count > 0:
                wav.writeframesraw(ctypes.string_at(samples, count * SAMPLE_WIDTH))
            return 0

        callback = SynthCallback(collect)
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(_voice_id(voice).encode()) != EE_OK:
            raise EngineError(f"eSpeak could not load voice {voice!r}")
        lib.espeak_SetParameter(PARAM_RATE, rate, 0)
        lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        token.check()
        if status != EE_OK:
            raise EngineError(f"eSpeak synthesis failed with status {status}")


def _library() -> ctypes.CDLL:
    """The eSpeak library, initialised once per process (again in a forked worker child)."""
    if _state.get("pid") != os.getpid():
        with _lock:
            if _state.get("pid") == os.getpid():  # another thread got here first
                return _state["lib"]
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
            path = espeakng_loader.get_data_path().encode()
            sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
            if sample_rate <= 0:
                raise EngineError("eSpeak NG failed to initialise; is its data path readable?")
            _state.update({"pid": os.getpid(), "lib": lib, "sample_rate": sample_rate})
    return _state["lib"]


def _voice_names() -> frozenset[str]:
    return frozenset(_voice_files())


def _voice_id(voice: str) -> str:
    # eSpeak matches names against voice files ("gmw/en-GB-x-rp"), not language codes such as
    # "en-gb", so translate the code and keep any "+variant" suffix.
    language, plus, variant = voice.partition("+")
    return _voice_files()[language.lower()] + plus + variant


@cache
def _voice_files() -> dict[str, str]:
    """Language code -> voice file identifier, taking the voice that ranks the code highest."""
    voices = _library().espeak_ListVoices(None)
    best: dict[str, tuple[int, str]] = {}
    index = 0
    while voices[index]:
        voice = voices[index].contents
        for priority, language in _languages(voice.languages):
            # A lower priority number means a better match ("en" -> gmw/en, not en-029).
            best[language] = min(
                best.get(language, (priority, "~")), (priority, voice.identifier.decode())
            )
        index += 1
    return {language: identifier for language, (_, identifier) in best.items()}


def _languages(address: int | None) -> list[tuple[int, str]]:
    # Packed as <priority byte><language>\0 entries, ending with a zero priority byte.
    found: list[tuple[int, str]] = []
    while address and (priority := ctypes.string_at(address, 1)[0]):
        language = ctypes.string_at(address + 1)
        found.append((priority, language.decode().lower()))
        address += len(language) + 2
    return found
