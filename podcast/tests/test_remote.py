"""Podcasts on remote engines, against a local server that speaks the OpenAI-compatible protocol.

The engines are chosen by environment variables, which the worker reads, so this module runs a
broker, web server and worker of its own, started with those variables.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from engines.media import probe
from engines.tests.openai_server import OpenAIServer
from podcast.models import PodcastRun
from runs.models import TERMINAL, RunStatus
from runs.tests.helpers import RedisServer, ServiceProcess, start_web, start_worker, wait_for

from .conftest import episode_request

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_profile", "contrast_speakers"),
]

STUB_MIDDLE = ["Here is the main idea.", "That makes sense."]  # what the stub's chat writes


class RemoteStack:
    """A provider stand-in, a broker, the web server and a worker whose env picks the engines."""

    def __init__(self) -> None:
        self.provider = OpenAIServer().__enter__()
        self.redis = RedisServer().start()
        self.web, self.base = start_web(self.redis.url)
        self.worker: ServiceProcess | None = None

    def engine_env(self, **extra: str) -> dict[str, str]:
        return {
            "TEXT_ENGINE": "openai",
            "SPEECH_ENGINE": "openai",
            "AI_BASE_URL": self.provider.base_url,
            "AI_API_KEY": "test-key",
            "AI_TIMEOUT_SECONDS": "5",
            **extra,
        }

    def use_worker(self, **extra: str) -> None:
        """(Re)start the worker with these engine settings."""
        if self.worker is not None:
            self.worker.stop()
        self.worker = start_worker(
            self.redis.url, concurrency=1, queues="podcast", **self.engine_env(**extra)
        )

    def stop(self) -> None:
        for service in (self.worker, self.web):
            if service is not None:
                service.stop()
        self.redis.stop()
        self.provider.__exit__(None, None, None)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        services = RemoteStack()
        try:
            services.use_worker()
            yield services
        finally:
            services.stop()


@pytest.fixture
def http(stack, user) -> Iterator[httpx.Client]:
    token = Token.objects.create(user=user).key
    stack.provider.requests.clear()
    stack.provider.failures.clear()
    with httpx.Client(
        base_url=stack.base, headers={"Authorization": f"Token {token}"}, timeout=30
    ) as client:
        yield client


def run_episode(http: httpx.Client, source) -> dict:
    reply = http.post("/api/podcasts/", json=episode_request([source.pk]))
    assert reply.status_code == 202, reply.text

    def finished():
        body = http.get(reply.json()["url"]).json()
        return body if body["status"] in TERMINAL else None

    return wait_for(finished, timeout=90, interval=0.5, what="the remote run to finish")


def test_a_remote_run_uses_the_provider_for_text_and_every_voice(stack, http, source):
    run = run_episode(http, source)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    transcript = run["result"]["transcript"]
    assert [line["text"] for line in transcript[1:3]] == STUB_MIDDLE
    assert transcript[0]["text"].startswith("This is Bees at work.")

    requests = stack.provider.requests
    chats = [r for r in requests if r.path == "/v1/chat/completions"]
    speech = [r for r in requests if r.path == "/v1/audio/speech"]
    assert len(chats) == 2 and len(speech) == len(transcript)
    assert all(r.headers["Authorization"] == "Bearer test-key" for r in requests)
    # The two speakers reach the provider as two different voices, line by line.
    sent = [r.body["voice"] for r in speech]
    assert sent == [line["voice"] for line in transcript]
    assert len(set(sent)) == 2

    mp3 = Path(tempfile.mkdtemp(prefix="podcast-remote-")) / "episode.mp3"
    mp3.write_bytes(http.get(run["result"]["audio_url"]).content)
    info = probe(mp3)
    assert info.first("audio").codec == "mp3"
    assert info.duration_seconds == pytest.approx(transcript[-1]["end"], abs=0.3)


def test_a_provider_refusal_fails_the_run_with_a_clear_message(stack, http, source):
    stack.provider.fail_next(400)
    run = run_episode(http, source)

    assert run["status"] == RunStatus.FAILED
    assert run["message"].startswith("writing the outline failed:")
    assert "refused the request (400): simulated 400" in run["message"]
    assert run["attempt"] == 1  # a refusal is permanent: no retry


def test_a_provider_5xx_is_retried_and_the_run_succeeds(stack, http, source):
    stack.provider.fail_next(503)
    run = run_episode(http, source)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    assert run["attempt"] == 2


def test_a_retry_after_a_speech_5xx_pays_for_no_text_or_line_again(stack, http, source):
    stack.provider.fail_next(503, path="/audio/speech", after=2)  # the third line's speech
    run = run_episode(http, source)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    assert run["attempt"] == 2
    requests = stack.provider.requests
    chats = [r for r in requests if r.path == "/v1/chat/completions"]
    spoken = [r.body["input"] for r in requests if r.path == "/v1/audio/speech"]
    texts = [line["text"] for line in run["result"]["transcript"]]
    # The outline and the transcript were written once; attempt 2 started at the failed line.
    assert len(chats) == 2
    assert spoken == [*texts[:3], *texts[2:]]
    stored = PodcastRun.objects.get(pk=run["id"])
    assert set(stored.checkpoints) == {
        "outline", "transcript", *(f"speech {n}" for n in range(1, len(texts) + 1))
    }  # fmt: skip
    assert not (Path(settings.MEDIA_ROOT) / "podcasts" / run["id"]).exists()


def test_with_fallback_configured_a_failing_provider_gives_a_local_episode(stack, http, source):
    stack.use_worker(ENGINE_FALLBACK="true")
    try:
        stack.provider.fail_next(400, times=100)
        run = run_episode(http, source)
    finally:
        stack.use_worker()

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    assert stack.provider.paths()[0] == "/v1/chat/completions"  # the provider was asked first
    transcript = run["result"]["transcript"]
    assert not set(STUB_MIDDLE) & {line["text"] for line in transcript}  # local text instead
    assert {line["voice"] for line in transcript} == {"en-gb+f3", "en-us+m3"}  # eSpeak voices


def test_a_streaming_server_with_its_own_voices_gives_true_timings(stack, http, source):
    """Kokoro-FastAPI-like: 0xFFFFFFFF WAV sizes, and only its own voice names (AI_VOICES)."""
    stack.provider.streamed_wav, stack.provider.voices = True, ("af_heart", "am_adam")
    stack.use_worker(AI_VOICES="af_heart,am_adam")
    try:
        run = run_episode(http, source)
    finally:
        stack.provider.streamed_wav, stack.provider.voices = False, None
        stack.use_worker()

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    transcript = run["result"]["transcript"]
    assert {line["voice"] for line in transcript} == {"af_heart", "am_adam"}
    # Each line lasts what the server spoke (0.25 s a word, at least 0.3 s), not 89,478 s.
    gap = 0.35
    for line, following in itertools.pairwise(transcript):
        spoken = max(0.3, 0.25 * len(line["text"].split()))
        assert line["end"] - line["start"] == pytest.approx(min(spoken, 10.0), abs=0.01)
        assert following["start"] == pytest.approx(line["end"] + gap, abs=0.01)
    mp3 = Path(tempfile.mkdtemp(prefix="podcast-remote-")) / "episode.mp3"
    mp3.write_bytes(http.get(run["result"]["audio_url"]).content)
    assert probe(mp3).duration_seconds == pytest.approx(transcript[-1]["end"], abs=0.3)
