"""A podcast from submission to a playable MP3, through the real API, broker and worker."""

from __future__ import annotations

import glob
import statistics
import tempfile
from pathlib import Path

import av
import pytest
from django.conf import settings

from engines.media import probe
from podcast.models import (
    EpisodeProfile,
    PodcastResult,
    PodcastRun,
    Source,
    Speaker,
    SpeakerProfile,
)
from runs.models import TERMINAL, RunStatus
from runs.tests.helpers import wait_for

from .audio_checks import decode_mono, pitch_hz
from .conftest import SHORT_SOURCE, episode_request, many_sentences

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def poll(api, url: str, *statuses: str, timeout: float = 120) -> dict:
    """GET the run until it reaches one of `statuses`; return its JSON."""

    def reached():
        body = api.get(url).json()
        return body if body["status"] in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.5, what=f"the run to be {statuses}")


def download(api, url: str) -> Path:
    reply = api.get(url)
    assert reply.status_code == 200, reply.content[:200]
    assert reply["Content-Type"] == "audio/mpeg"
    path = Path(tempfile.mkdtemp(prefix="podcast-test-")) / "episode.mp3"
    path.write_bytes(b"".join(reply.streaming_content))
    return path


def submit(api, **body) -> dict:
    reply = api.post("/api/podcasts/", body, format="json")
    assert reply.status_code == 202, reply.json()
    return reply.json()


@pytest.mark.usefixtures("short_profile", "contrast_speakers")
def test_an_episode_goes_from_sources_to_a_playable_two_voice_mp3(api):
    created = api.post("/api/sources/", {"title": "Bees", "content": SHORT_SOURCE}, format="json")
    assert created.status_code == 201, created.json()

    accepted = submit(api, **episode_request([created.json()["id"]]))
    run = poll(api, accepted["url"], *TERMINAL)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    assert run["progress"] == 100
    result = run["result"]
    transcript = result["transcript"]
    assert result["processing_time"] > 0

    # The audio, fetched through the API, is a real MP3 as long as the transcript says.
    mp3 = download(api, result["audio_url"])
    info = probe(mp3)
    assert info.first("audio").codec == "mp3"
    assert info.duration_seconds == pytest.approx(transcript[-1]["end"], abs=0.3)
    assert result["duration_seconds"] == pytest.approx(info.duration_seconds, abs=0.05)
    with av.open(str(mp3)) as container:
        assert container.metadata.get("title") == "Bees at work"

    # The outline comes from the source; the dialogue opens and closes as the profile says.
    points = [point for section in result["outline"] for point in section["points"]]
    flat_source = " ".join(SHORT_SOURCE.split())
    assert points and all(point in flat_source for point in points)  # whole source sentences
    assert transcript[0]["text"].startswith("This is Bees at work.")
    assert "the waggle dance" in transcript[0]["text"]
    assert transcript[-1]["text"] == "Bye from Bees at work."
    starts = [line["start"] for line in transcript]
    assert starts == sorted(starts)

    # Both speakers talk, each in their own voice, and the voices really differ in the audio.
    assert {line["speaker"] for line in transcript} == {"Ann", "Bob"}
    assert {line["voice"] for line in transcript} == {"en-gb+f3", "en-us+m3"}
    samples = decode_mono(mp3)
    pitch = {
        name: statistics.median(
            pitch_hz(samples, line["start"], line["end"])
            for line in transcript
            if line["speaker"] == name
        )
        for name in ("Ann", "Bob")
    }
    assert pitch["Ann"] > 1.4 * pitch["Bob"], pitch


def test_a_chinese_source_with_cmn_voices_gives_chinese_speech(api, user, profiles):
    EpisodeProfile.objects.create(
        slug="zh", name="中文", segments=1, target_words=40, intro="欢迎收听{episode}。",
        outro="再见。", language="cmn",
    )  # fmt: skip
    speakers = SpeakerProfile.objects.create(slug="zh", name="中文主持")
    Speaker.objects.create(profile=speakers, position=0, name="李", voice="cmn", pitch=70)
    Speaker.objects.create(profile=speakers, position=1, name="王", voice="cmn", pitch=30)
    source = Source.objects.create(
        owner=user,
        title="蜜蜂",
        content="蜜蜂用摇摆舞告诉同伴花在哪里。舞蹈的角度指向食物的方向。蜂蜜可以保存很多年。",
    )
    accepted = submit(api, episode_profile="zh", speaker_profile="zh", episode_name="蜜蜂",
                      source_ids=[source.pk])  # fmt: skip
    run = poll(api, accepted["url"], *TERMINAL)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    transcript = run["result"]["transcript"]
    assert transcript[0]["text"].startswith("欢迎收听蜜蜂。")
    assert {line["speaker"] for line in transcript} == {"李", "王"}
    # Chinese text spoken by the cmn voice: seconds of audio, not a spelled-out fallback.
    assert probe(download(api, run["result"]["audio_url"])).duration_seconds > 3


@pytest.mark.usefixtures("contrast_speakers")
def test_cancel_stops_an_episode_during_speech_and_leaves_no_audio(api, user, profiles):
    # Long enough (a few minutes of speech) that the cancel lands while lines are being spoken.
    EpisodeProfile.objects.create(slug="long", name="Long", segments=4, target_words=1200)
    source = Source.objects.create(owner=user, title="Hives", content=many_sentences(120))
    accepted = submit(api, **episode_request([source.pk], episode_profile="long"))
    wait_for(
        lambda: PodcastRun.objects.get(pk=accepted["id"]).stage.startswith("speech "),
        timeout=60,
        interval=0.1,
        what="speech to be under way",
    )

    reply = api.post(f"/api/podcasts/{accepted['id']}/cancel/")
    assert reply.status_code == 202

    run = poll(api, accepted["url"], *TERMINAL, timeout=30)
    assert run["status"] == RunStatus.CANCELLED
    assert 0 < run["progress"] < 100
    assert run["result"] is None
    assert not (Path(settings.MEDIA_ROOT) / f"podcasts/{accepted['id']}.mp3").exists()
    assert not glob.glob(f"{tempfile.gettempdir()}/run-{accepted['id']}-*")  # temp WAVs gone
    assert api.post(f"/api/podcasts/{accepted['id']}/cancel/").status_code == 409


@pytest.mark.usefixtures("short_profile")
def test_a_failed_episode_says_why_and_succeeds_when_retried(api, source, contrast_speakers):
    # A voice that slipped past validation (edited in the database) fails the run ...
    Speaker.objects.filter(profile=contrast_speakers, name="Bob").update(voice="xx-nope")
    accepted = submit(api, **episode_request([source.pk]))
    run = poll(api, accepted["url"], *TERMINAL)

    assert run["status"] == RunStatus.FAILED
    assert "speaking line" in run["message"] and "xx-nope" in run["message"]
    assert run["result"] is None

    # ... and once it is fixed, retry sends the same run round again to a single result.
    Speaker.objects.filter(profile=contrast_speakers, name="Bob").update(voice="en-us+m3")
    assert api.post(f"/api/podcasts/{accepted['id']}/retry/").status_code == 202
    run = poll(api, accepted["url"], *TERMINAL)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    assert run["attempt"] == 2
    assert PodcastResult.objects.filter(run_id=accepted["id"]).count() == 1
    assert probe(download(api, run["result"]["audio_url"])).first("audio") is not None
