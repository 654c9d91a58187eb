"""The remote engines against servers that behave as the ones users run (openai_server.py):
streamed WAV headers, the provider's own voice names, and a small context that cuts long chats."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import pytest

import engines
from engines import EngineConfig, EngineError, media, wav
from engines.config import RemoteConfig
from engines.interfaces import Section
from engines.tests.openai_server import UNKNOWN_SIZE, OpenAIServer

KOKORO_VOICES = ("af_heart", "am_adam", "bf_emma")


def remote(base_url: str, **provider) -> EngineConfig:
    config = RemoteConfig(
        base_url=base_url, api_key="k", chat_model="m", tts_model="t", image_model="i",
        timeout_seconds=5.0, **provider,
    )  # fmt: skip
    return EngineConfig(text="openai", speech="openai", image="openai", remote=config)


def long_source(sentences: int) -> str:
    topics = ("The harbour", "A lighthouse", "The fishing fleet", "Each ferry", "The old pier")
    return " ".join(
        f"{topics[i % 5]} number {i} keeps a log of tides and storms since the year {1800 + i}."
        for i in range(sentences)
    )


def test_a_streamed_wav_lasts_as_long_as_its_samples_not_its_header(tmp_path: Path) -> None:
    with OpenAIServer(streamed_wav=True) as server:
        engine = engines.get_speech_engine(remote(server.base_url))
        out = tmp_path / "line.wav"
        seconds = engine.synthesize(
            "one two three four", voice="en-us", pitch=50, rate=170, out_path=out
        )
    assert seconds == pytest.approx(1.0, abs=0.01)  # four words at 0.25 s, not 89,478 s
    # The file on disk now tells the truth to every reader: wave, PyAV and ffmpeg alike.
    with wave.open(str(out), "rb") as reader:
        assert reader.getframerate() == 24000
        assert reader.getnframes() / reader.getframerate() == pytest.approx(1.0, abs=0.01)
    assert media.audio_seconds(out) == pytest.approx(1.0, abs=0.01)
    assert media.probe(out).duration_seconds == pytest.approx(1.0, abs=0.02)


def test_line_timings_of_streamed_wavs_add_up(tmp_path: Path) -> None:
    with OpenAIServer(streamed_wav=True) as server:
        engine = engines.get_speech_engine(remote(server.base_url))
        lines = []
        for index, text in enumerate(("one two", "one two three four five six", "one two three")):
            lines.append(tmp_path / f"{index}.wav")
            engine.synthesize(text, voice="nova", pitch=50, rate=170, out_path=lines[-1])
    spans = engines.audio.join_lines(lines, gap_seconds=0.5, out_path=tmp_path / "all.wav")
    assert spans == [(0.0, 0.5), (1.0, 2.5), (3.0, 3.75)]
    assert media.audio_seconds(tmp_path / "all.wav") == pytest.approx(3.75, abs=0.01)


def test_a_header_that_claims_unknown_sizes_is_repaired_in_place(tmp_path: Path) -> None:
    path = tmp_path / "streamed.wav"
    frames = struct.pack("<h", 1000) * 8000
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    path.write_bytes(
        b"RIFF" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
        + fmt + b"data" + struct.pack("<I", UNKNOWN_SIZE) + frames + b"\x01"  # a torn sample
    )  # fmt: skip
    assert wav.duration(path) == pytest.approx(1.0)
    assert wav.repair(path) and not wav.repair(path)
    found = wav.layout(path)
    assert found is not None and found.declared_bytes == 16000 and found.riff_bytes == 16036


def test_the_providers_own_voice_names_pass_through(tmp_path: Path) -> None:
    with OpenAIServer(voices=KOKORO_VOICES) as server:
        # OpenAI's six are not this server's: an eSpeak name mapped onto them is refused ...
        plain = engines.get_speech_engine(remote(server.base_url))
        with pytest.raises(EngineError, match="not found"):
            plain.synthesize("hello there", voice="en-us", pitch=50, rate=170,
                             out_path=tmp_path / "a.wav")  # fmt: skip
        # ... while with AI_VOICES the server's names go through as given, and eSpeak names
        # land on one of them.
        config = remote(server.base_url, voices=KOKORO_VOICES)
        engine = engines.get_speech_engine(config)
        engine.synthesize("hello there", voice="af_heart", pitch=50, rate=170,
                          out_path=tmp_path / "b.wav")  # fmt: skip
        engine.synthesize("hello there", voice="en-gb+f3", pitch=50, rate=170,
                          out_path=tmp_path / "c.wav")  # fmt: skip
        sent = [request.body["voice"] for request in server.requests[1:]]
    assert sent[0] == "af_heart" and sent[1] in KOKORO_VOICES
    assert engine.list_voices() == list(KOKORO_VOICES)
    engines.check_voice(config, "am_adam")  # a profile may name it
    with pytest.raises(EngineError):
        engines.check_voice(remote("http://x", voices=()), "am_adam")


def test_a_long_source_is_condensed_to_fit_a_small_context() -> None:
    source = long_source(600)  # about 50,000 characters
    with OpenAIServer(context_chars=3000) as server:
        # Larger than the server reads: the server cuts the chat and the reply is useless.
        with pytest.raises(EngineError):
            engines.get_text_engine(remote(server.base_url, context_chars=100_000)).write_outline(
                [source], sections=3, language="en"
            )
        assert server.truncated == 1
        # Within the budget, the whole request arrives and the outline is written.
        config = remote(server.base_url, context_chars=2800)
        outline = engines.get_text_engine(config).write_outline([source], sections=3, language="en")
        assert server.truncated == 1 and len(outline) == 3
        sent = server.requests[-1].body["messages"]
    assert sum(len(m["content"]) for m in sent) <= 2800
    condensed = " ".join(json.loads(sent[-1]["content"])["sources"])
    # Whole key sentences from every stretch of the source: its beginning, middle and end.
    for first in (0, 300, 525):
        assert any(f"number {n} " in condensed for n in range(first, first + 75)), first
    assert condensed.endswith(".")


def test_a_long_outline_is_trimmed_for_the_transcript_call() -> None:
    outline = [Section(f"Part {i}", [long_source(3)] * 6) for i in range(6)]
    with OpenAIServer(context_chars=3000) as server:
        config = remote(server.base_url, context_chars=3000)
        lines = engines.get_text_engine(config).write_transcript(
            outline, [engines.interfaces.Speaker("A", "host", "en-us"),
                      engines.interfaces.Speaker("B", "guest", "en-gb")],
            intro="Hi.", outro="Bye.", briefing_suffix="", target_words=300, language="en",
        )  # fmt: skip
        assert server.truncated == 0 and lines
        sent = server.requests[-1].body["messages"]
    assert sum(len(m["content"]) for m in sent) <= 3000
