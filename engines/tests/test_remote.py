from __future__ import annotations

import logging
import wave
from pathlib import Path

import pytest
from PIL import Image

import engines
from engines import EngineConfig, EngineError, TransientEngineError
from engines.config import RemoteConfig
from engines.interfaces import Speaker
from engines.tests.openai_server import OpenAIServer
from engines.text import write_outline

HOSTS = [Speaker("Alex", "host", "en-us", 40, 170), Speaker("Sam", "expert", "en-gb", 70, 160)]
LOCAL = EngineConfig()


def remote(base_url: str, **choices) -> EngineConfig:
    provider = RemoteConfig(
        base_url=base_url,
        api_key="sk-test",
        chat_model="gpt-4o-mini",
        tts_model="tts-1",
        image_model="dall-e-3",
        timeout_seconds=0.5,
    )
    kinds = {"text": "openai", "speech": "openai", "image": "openai"}
    return EngineConfig(**{**kinds, **choices}, remote=provider)


@pytest.fixture
def server():
    with OpenAIServer(timeout_delay_seconds=2.0) as stub:
        yield stub


@pytest.fixture
def config(server) -> EngineConfig:
    return remote(server.base_url)


def test_chat_replies_are_parsed_into_outline_transcript_and_script(server, config) -> None:
    text = engines.get_text_engine(config)
    outline = text.write_outline(["Some source."], sections=2, language="en")
    lines = text.write_transcript(
        outline,
        HOSTS,
        intro="Hi.",
        outro="Bye.",
        briefing_suffix="",
        target_words=100,
        language="en",
    )
    scenes = text.write_video_script(
        "A story.", [{"name": "Fox", "description": "red"}], seed="s", scenes=2
    )
    assert [s.title for s in outline] == ["Part 1", "Part 2"]
    assert [line.speaker for line in lines][:2] == ["Alex", "Sam"] and lines[0].text == "Hi."
    assert [s.character for s in scenes] == ["Fox", "Fox"]
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.body["response_format"] == {"type": "json_object"}


def test_speech_reply_is_saved_as_a_wav(server, config, tmp_path: Path) -> None:
    out = tmp_path / "line.wav"
    seconds = engines.get_speech_engine(config).synthesize(
        "one two three four", voice="en-us", pitch=50, rate=170, out_path=out
    )
    with wave.open(str(out), "rb") as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(seconds) == 1.0
    body = server.requests[0].body
    assert body["response_format"] == "wav" and body["voice"] in engines.remote.OPENAI_VOICES


def test_image_replies_become_pngs_of_the_requested_size(server, config, tmp_path: Path) -> None:
    images = engines.get_image_engine(config)
    portrait = images.draw_portrait("Ada", "red coat", tmp_path / "a.png", size=(128, 128))
    scene = images.draw_scene(
        "Hi",
        "beach",
        portrait=portrait,
        subtitle="Hi",
        out_path=tmp_path / "s.png",
        size=(320, 180),
    )
    assert Image.open(portrait).size == (128, 128) and Image.open(scene).size == (320, 180)
    assert server.requests[0].body["response_format"] == "b64_json"


def test_a_server_error_is_transient(server, config) -> None:
    server.fail_next(500)
    with pytest.raises(TransientEngineError, match="500"):
        engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")


def test_a_timeout_is_transient(server, config) -> None:
    server.fail_next("timeout")
    with pytest.raises(TransientEngineError, match="timed out"):
        engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")


def test_a_refused_request_is_permanent_with_the_providers_reason(server, config) -> None:
    server.fail_next(400)
    with pytest.raises(EngineError, match="simulated 400") as caught:
        engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")
    assert not isinstance(caught.value, TransientEngineError)


def test_an_unparseable_reply_is_permanent(server, config) -> None:
    server.chat_content = "Sure! Here is your outline: ..."
    with pytest.raises(EngineError, match="not JSON") as caught:
        engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")
    assert not isinstance(caught.value, TransientEngineError)


def test_a_fenced_json_reply_is_accepted(server, config) -> None:
    server.chat_content = '```json\n{"sections": [{"title": "T", "points": ["p"]}]}\n```'
    outline = engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")
    assert outline[0].title == "T"


def test_an_unreachable_provider_is_transient() -> None:
    config = remote("http://127.0.0.1:9/v1")  # discard port: nothing listens
    with pytest.raises(TransientEngineError, match="cannot reach"):
        engines.get_text_engine(config).write_outline(["x"], sections=1, language="en")


def test_fallback_uses_the_local_engine_and_warns(server, caplog) -> None:
    config = remote(server.base_url, fallback=True)
    server.fail_next(503)
    source = "Tides rise twice a day. The moon pulls the oceans toward it."
    with caplog.at_level(logging.WARNING, logger="engines"):
        outline = engines.get_text_engine(config).write_outline([source], sections=1, language="en")
    assert outline == write_outline([source], sections=1, language="en")
    assert "using the local engine" in caplog.text


def test_local_is_the_default() -> None:
    assert engines.get_text_engine(LOCAL) is engines.text
    assert engines.get_speech_engine(LOCAL) is engines.speech
    assert isinstance(engines.get_image_engine(LOCAL), engines.images.LocalImageEngine)


def test_an_openai_engine_without_a_provider_says_what_is_missing() -> None:
    with pytest.raises(engines.EngineConfigError, match="TEXT_ENGINE"):
        engines.get_text_engine(EngineConfig(text="openai"))


def test_provider_voices_are_accepted_only_while_the_provider_speaks_alone() -> None:
    engines.check_voice(LOCAL, "en-gb")
    engines.check_voice(remote("http://unused/v1"), "alloy")
    for config in (LOCAL, remote("http://unused/v1", fallback=True)):
        with pytest.raises(EngineError, match="unknown voice 'alloy'"):
            engines.check_voice(config, "alloy")
