from __future__ import annotations

import array
import wave
from pathlib import Path

import pytest

from engines import speech
from engines.errors import EngineError
from engines.media import probe


def _samples(path: Path) -> array.array:
    with wave.open(str(path), "rb") as wav:
        return array.array("h", wav.readframes(wav.getnframes()))


def test_synthesis_writes_a_mono_wav_as_long_as_it_reports(tmp_path: Path) -> None:
    out = tmp_path / "line.wav"
    seconds = speech.synthesize(
        "Welcome to the show.", voice="en-us", pitch=50, rate=170, out_path=out
    )
    info = probe(out)
    assert 0.5 < seconds < 5
    assert info.duration_seconds == pytest.approx(seconds, abs=0.05)
    assert info.streams[0].kind == "audio" and info.streams[0].codec == "pcm_s16le"
    with wave.open(str(out), "rb") as wav:
        assert wav.getnchannels() == 1


def test_two_voices_give_different_audio(tmp_path: Path) -> None:
    text = "The tide comes in twice a day."
    us = speech.synthesize(text, voice="en-us", pitch=30, rate=170, out_path=tmp_path / "a.wav")
    gb = speech.synthesize(text, voice="en-gb+f3", pitch=80, rate=150, out_path=tmp_path / "b.wav")
    assert us != pytest.approx(gb, abs=0.01)
    assert _samples(tmp_path / "a.wav") != _samples(tmp_path / "b.wav")


def test_a_chinese_line_with_cmn_is_spoken_in_chinese(tmp_path: Path) -> None:
    line = "今天我们讨论太阳能。"
    chinese = speech.synthesize(line, voice="cmn", pitch=50, rate=170, out_path=tmp_path / "zh.wav")
    english = speech.synthesize(line, voice="en", pitch=50, rate=170, out_path=tmp_path / "en.wav")
    assert chinese > 0.8
    assert max(abs(s) for s in _samples(tmp_path / "zh.wav")) > 1000  # not silence
    # An English voice spells out each character as "Chinese letter", which takes far longer.
    assert english > 1.5 * chinese


def test_an_unknown_voice_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="unknown voice"):
        speech.synthesize("Hi.", voice="klingon", pitch=50, rate=170, out_path=tmp_path / "x.wav")


def test_empty_text_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        speech.synthesize("  ", voice="en", pitch=50, rate=170, out_path=tmp_path / "x.wav")


def test_voice_list_names_the_common_languages() -> None:
    assert {"en", "en-us", "en-gb", "cmn", "de", "fr"} <= set(speech.list_voices())
