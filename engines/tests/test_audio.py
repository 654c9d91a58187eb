from __future__ import annotations

from pathlib import Path

import av
import pytest

from engines.audio import encode_mp3, join_lines
from engines.errors import EngineError
from engines.media import probe


def test_joined_lines_are_spaced_by_the_gap(tone, tmp_path: Path) -> None:
    wavs = [tone("a.wav", seconds=1.0), tone("b.wav", seconds=0.5), tone("c.wav", seconds=0.25)]
    spans = join_lines(wavs, gap_seconds=0.5, out_path=tmp_path / "all.wav")
    assert spans == [(0.0, 1.0), (1.5, 2.0), (2.5, 2.75)]
    assert probe(tmp_path / "all.wav").duration_seconds == pytest.approx(2.75, abs=0.01)


def test_lines_of_different_sample_rates_are_joined(tone, tmp_path: Path) -> None:
    wavs = [tone("a.wav", seconds=1.0, rate=22050), tone("b.wav", seconds=1.0, rate=16000)]
    spans = join_lines(wavs, gap_seconds=0.2, out_path=tmp_path / "all.wav")
    info = probe(tmp_path / "all.wav")
    assert info.streams[0].sample_rate == 22050
    assert info.duration_seconds == pytest.approx(spans[-1][1], abs=0.02) and spans[-1][1] > 2.1


def test_joining_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        join_lines([], gap_seconds=0.3, out_path=tmp_path / "all.wav")


def test_mp3_is_normalised_and_tagged(tone, tmp_path: Path) -> None:
    out = tmp_path / "episode.mp3"
    encode_mp3(tone(seconds=3.0), out, title="Episode 1: Tides", artist="Two Hosts")
    info = probe(out)
    assert [(s.kind, s.codec, s.sample_rate) for s in info.streams] == [("audio", "mp3", 44100)]
    assert info.duration_seconds == pytest.approx(3.0, abs=0.1)
    with av.open(str(out)) as container:
        assert container.metadata["title"] == "Episode 1: Tides"
        assert container.metadata["artist"] == "Two Hosts"


def test_an_unreadable_wav_is_a_permanent_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(EngineError):
        encode_mp3(bad, tmp_path / "x.mp3", title="t", artist="a")
