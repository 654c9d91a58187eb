from __future__ import annotations

import logging
import wave
from pathlib import Path

import pytest
from PIL import Image

import engines
from engines import EngineError, TransientEngineError
from engines.remote import RemoteTextEngine
from engines.tests.openai_server import OpenAIServer
from engines.text import Speaker, write_outline

HOSTS = [Speaker("Alex", "host", "en-us", 40, 170), Speaker("Sam", "expert", "en-gb", 70, 160)]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with OpenAIServer(timeout_delay_seconds=2.0) as stub:
        for kind in ("TEXT_ENGINE", "SPEECH_ENGINE", "IMAGE_ENGINE"):
            monkeypatch.setenv(kind, "openai")
        monkeypatch.setenv("AI_BASE_URL", stub.base_url)
        monkeypatch.setenv("AI_API_KEY", "sk-test")
        monkeypatch.setenv("AI_TIMEOUT_SECONDS", "0.5")
        yield stub


def test_chat_replies_are_parsed_into_outline_transcript_and_script(server) -> None:
    text = engines.get_text_engine()
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


def test_speech_reply_is_saved_as_a_wav(server, tmp_path: Path) -> None:
    out = tmp_path / "line.wav"
    seconds = engines.get_speech_engine().synthesize(
        "one two three four", voice="en-us", pitch=50, rate=170, out_path=out
    )
    with wave.open(str(out), "rb") as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(seconds) == 1.0
    body = server.requests[0].body
    assert body["response_format"] == "wav" and body["voice"] in engines.remote.OPENAI_VOICES


def test_image_replies_become_pngs_of_the_requested_size(server, tmp_path: Path) -> None:
    images = engines.get_image_engine()
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


def test_a_server_error_is_transient(server) -> None:
    server.fail_next(500)
    with pytest.raises(TransientEngineError, match="500"):
        engines.get_text_engine().write_outline(["x"], sections=1, language="en")


def test_a_timeout_is_transient(server) -> None:
    server.fail_next("timeout")
    with pytest.raises(TransientEngineError, match="timed out"):
        engines.get_text_engine().write_outline(["x"], sections=1, language="en")


def test_a_refused_request_is_permanent_with_the_providers_reason(server) -> None:
    server.fail_next(400)
    with pytest.raises(EngineError, match="simulated 400") as caught:
        engines.get_text_engine().write_outline(["x"], sections=1, language="en")
    assert not isinstance(caught.value, TransientEngineError)


def test_an_unparseable_reply_is_permanent(server) -> None:
    server.chat_content = "Sure! Here is your outline: ..."
    with pytest.raises(EngineError, match="not JSON") as caught:
        engines.get_text_engine().write_outline(["x"], sections=1, language="en")
    assert not isinstance(caught.value, TransientEngineError)


def test_a_fenced_json_reply_is_accepted(server) -> None:
    server.chat_content = '```json\n{"sections": [{"title": "T", "points": ["p"]}]}\n```'
    outline = engines.get_text_engine().write_outline(["x"], sections=1, language="en")
    assert outline[0].title == "T"


def test_an_unreachable_provider_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_ENGINE", "openai")
    monkeypatch.setenv("AI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: nothing listens
    with pytest.raises(TransientEngineError, match="cannot reach"):
        engines.get_text_engine().write_outline(["x"], sections=1, language="en")


def test_fallback_uses_the_local_engine_and_warns(server, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ENGINE_FALLBACK", "true")
    server.fail_next(503)
    source = "Tides rise twice a day. The moon pulls the oceans toward it."
    with caplog.at_level(logging.WARNING, logger="engines"):
        outline = engines.get_text_engine().write_outline([source], sections=1, language="en")
    assert outline == write_outline([source], sections=1, language="en")
    assert "using the local engine" in caplog.text


def test_local_is_the_default() -> None:
    assert engines.get_text_engine() is engines.text
    assert engines.get_speech_engine() is engines.speech
    assert not isinstance(engines.get_text_engine(), RemoteTextEngine)


@pytest.mark.parametrize(
    ("name", "value"),
    [("TEXT_ENGINE", "gpt"), ("ENGINE_FALLBACK", "yes"), ("AI_TIMEOUT_SECONDS", "soon")],
)
def test_a_bad_setting_names_its_variable(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv("TEXT_ENGINE", "openai")
    monkeypatch.setenv(name, value)
    with pytest.raises(engines.EngineConfigError, match=name):
        engines.get_text_engine()
