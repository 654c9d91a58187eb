"""The video canvas through the real API, broker and prefork worker, checked on the files."""

from __future__ import annotations

import os
import re

import pytest
from celery import current_app
from rest_framework.test import APIClient

from engines.media import probe
from runs import artifacts, lifecycle
from runs.models import RunStatus
from runs.tests.helpers import wait_for
from video.models import CharacterImage, VideoResult, VideoRun, artifact_name

from .conftest import CAST, fetch, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def submit(api, body: dict, **headers) -> VideoRun:
    answer = api.post("/api/videos/", body, format="json", **headers)
    assert answer.status_code == 202, answer.json()
    return VideoRun.objects.get(pk=answer.json()["id"])


def test_a_video_is_made_end_to_end_with_picture_sound_and_the_narrations_length(
    api, video_body, other_user, admin_client, tmp_path
):
    run = submit(api, video_body, HTTP_IDEMPOTENCY_KEY="harbour-1")
    assert submit(api, video_body, HTTP_IDEMPOTENCY_KEY="harbour-1").pk == run.pk
    wait_finished(run)
    data = api.get(f"/api/videos/{run.pk}/").json()
    assert data["status"] == RunStatus.SUCCEEDED, (data["message"], data["error"])
    assert (data["progress"], data["stage"]) == (100, "done")
    result = data["result"]

    video = probe(fetch(api, result["video_url"], tmp_path / "video.mp4"))
    narration = probe(fetch(api, result["audio_url"], tmp_path / "narration.wav"))
    picture, sound = video.first("video"), video.first("audio")
    assert picture is not None and sound is not None
    assert (picture.codec, picture.pix_fmt, sound.codec) == ("h264", "yuv420p", "aac")
    assert (picture.width, picture.height) == (640, 360) == (result["width"], result["height"])
    assert abs(video.duration_seconds - narration.duration_seconds) <= 0.5
    assert abs(result["duration_seconds"] - video.duration_seconds) < 0.01
    mp4 = (tmp_path / "video.mp4").read_bytes()
    assert mp4.find(b"moov") < mp4.find(b"mdat"), "fast start puts the index first"

    assert [s["speaker"] for s in result["script"]] == ["Ada", "Ben", "Ada"]
    assert result["script"][1]["voice"] == "en-gb"  # Ben's own voice
    assert result["script"][0]["voice"] != result["script"][1]["voice"]
    assert all(s["end"] > s["start"] for s in result["script"])
    assert [image["name"] for image in result["images"]] == ["Ada", "Ben"]
    portrait = fetch(api, result["images"][0]["url"], tmp_path / "ada.png").read_bytes()
    assert portrait.startswith(b"\x89PNG")
    assert result["processing_time"] > 0

    stranger = APIClient()
    stranger.force_authenticate(other_user)
    for url in (f"/api/videos/{run.pk}/", result["video_url"], result["images"][0]["url"]):
        assert stranger.get(url).status_code == 404
        assert APIClient().get(url).status_code == 401

    page = admin_client.get(f"/admin/video/videorun/{run.pk}/change/").content.decode()
    assert f'<video src="/api/videos/{run.pk}/video/"' in page
    assert f'src="/api/videos/{run.pk}/images/1/"' in page
    assert admin_client.get(f"/api/videos/{run.pk}/video/").status_code == 200  # staff see all


def test_a_redelivered_part_changes_nothing(api, video_body, celery_worker):
    run = wait_finished(submit(api, video_body))
    assert run.status == RunStatus.SUCCEEDED
    video = VideoResult.objects.get(run=run).video.path
    before = (run.finished_at, run.attempt, VideoResult.objects.get(run=run).updated_at)
    mtime = os.stat(video).st_mtime_ns
    for name in ("video.write_script", "video.speak_narration", "video.compose"):
        current_app.send_task(name, args=[str(run.pk), run.attempt])
    skipped = re.compile(rf"run {run.pk} (is )?not running on attempt 1")
    wait_for(
        lambda: len(skipped.findall(celery_worker.log())) >= 3,
        timeout=60,
        what="the redelivered parts to be skipped",
    )
    run.refresh_from_db()
    assert (run.finished_at, run.attempt, VideoResult.objects.get(run=run).updated_at) == before
    assert os.stat(video).st_mtime_ns == mtime


def test_a_failing_stage_fails_the_run_exactly_once(user, celery_worker):
    # The API refuses a voice eSpeak does not know, so write the row directly, as a row
    # written before the voice list changed would be.
    cast = [CAST[0], {"name": "Ben", "description": "a fisherman", "voice": "xx-nowhere"}]
    script = [{"speaker": name, "text": f"{name} speaks first."} for name in ("Ada", "Ben")]
    run = VideoRun.objects.create(
        owner=user, title="Broken", characters=cast, script=script, resolution="640x360"
    )
    lifecycle.dispatch(run)
    wait_finished(run)

    assert run.status == RunStatus.FAILED
    assert "xx-nowhere" in run.message
    assert "speak_narration" in run.error  # the traceback of the part that failed
    # compose starts after the chord but does nothing; and no part failed the run a second time
    wait_for(
        lambda: re.search(rf"video.compose: run {run.pk} (is )?not running", celery_worker.log()),
        timeout=60,
        what="compose to skip the failed run",
    )
    # The terminal state is logged at INFO once per transition (a traceback logs at ERROR).
    endings = re.findall(rf"INFO \S+: run {run.pk} (failed|succeeded|cancelled|timed_out)$",
                         celery_worker.log(), flags=re.MULTILINE)  # fmt: skip
    assert endings == ["failed"]
    assert not VideoResult.objects.filter(run=run).exists()  # a result comes only with success
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_cancel_in_the_middle_stops_the_parts_not_yet_started(api, video_body, celery_worker):
    long_line = "The lantern swings above the quay while the boats knock softly together. "
    video_body["script"] = [
        {"speaker": CAST[i % 2]["name"], "text": f"Scene {i}. " + long_line * 3} for i in range(12)
    ]
    run = submit(api, video_body)
    middle = ("drawing characters", "drawing scenes", "speaking narration")
    wait_for(
        lambda: VideoRun.objects.filter(pk=run.pk, stage__in=middle).exists(),
        timeout=120,
        interval=0.05,
        what="the run to reach the middle of its canvas",
    )
    assert api.post(f"/api/videos/{run.pk}/cancel/").status_code == 202
    wait_finished(run)

    assert run.status == RunStatus.CANCELLED
    assert run.stage in middle
    wait_for(
        lambda: re.search(rf"video.compose: run {run.pk} (is )?not running", celery_worker.log()),
        timeout=60,
        what="compose to skip the cancelled run",
    )
    assert not VideoResult.objects.filter(run=run).exists()
    assert not artifacts.exists(artifact_name(run.pk, "video.mp4"))
    assert not CharacterImage.objects.filter(result__run=run).exists()

    # Retry sends the whole canvas round again on a new attempt; still one result, one cast.
    assert api.post(f"/api/videos/{run.pk}/retry/").status_code == 202
    wait_finished(run)
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2), (run.message, run.error)
    assert probe(VideoResult.objects.get(run=run).video.path).first("video").height == 360
    assert CharacterImage.objects.filter(result__run=run).count() == len(CAST)
