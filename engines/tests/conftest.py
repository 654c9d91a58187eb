from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest


def write_tone(path: Path, *, seconds: float, rate: int = 22050, frequency: float = 440.0) -> Path:
    """A real mono 16-bit WAV tone, for tests that need audio without speech."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        samples = (
            int(6000 * math.sin(2 * math.pi * frequency * i / rate))
            for i in range(int(seconds * rate))
        )
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


@pytest.fixture
def tone(tmp_path: Path):
    def make(name: str = "tone.wav", **kwargs) -> Path:
        return write_tone(tmp_path / name, **kwargs)

    return make
