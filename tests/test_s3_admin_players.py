"""The admin's players with the media in an S3 bucket: a real headless Chromium, logged in as
staff, loads the audio and the video of finished runs through the authenticated download URL,
which redirects to a presigned URL (or streams from the bucket), from a real SeaweedFS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest
from django.core.files import File
from django.core.files.storage import default_storage

from ops.testing import start_web
from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, SpeakerProfile
from podcast.profiles import seed_profiles
from video.models import VideoResult, VideoRun

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a-long-password-6"


def make_media(folder: Path) -> tuple[Path, Path]:
    """A 2 s MP3 and a 2 s 320x240 MP4 (H.264 + AAC), made with the packaged ffmpeg."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    mp3, mp4 = folder / "tone.mp3", folder / "bars.mp4"
    quiet = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run(
        [*quiet, "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "libmp3lame",
         str(mp3)], check=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        [*quiet, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=330:duration=2", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-movflags", "+faststart",
         str(mp4)], check=True, timeout=60,
    )  # fmt: skip
    return mp3, mp4


@pytest.fixture
def browser(monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM calls between the steps
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--autoplay-policy=no-user-gesture-required"],
        )  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture
def stored_runs(s3_media, django_user_model, tmp_path) -> tuple[PodcastRun, VideoRun]:
    """A finished podcast and video whose files are objects in the bucket."""
    staff = django_user_model.objects.create_superuser("olga", password=PASSWORD)
    seed_profiles()
    mp3, mp4 = make_media(tmp_path)
    podcast = PodcastRun.objects.create(
        owner=staff, status="succeeded", episode_name="Tone",
        episode_profile=EpisodeProfile.objects.get(slug="default"),
        speaker_profile=SpeakerProfile.objects.get(slug="default"),
    )  # fmt: skip
    with mp3.open("rb") as handle:
        audio = default_storage.save(f"podcasts/{podcast.pk}.mp3", File(handle))
    PodcastResult.objects.create(run=podcast, audio=audio, duration_seconds=2.0,
                                 processing_time_seconds=0.1)  # fmt: skip
    video = VideoRun.objects.create(
        owner=staff, status="succeeded", title="Bars", characters=[{"name": "Ada"}]
    )
    with mp4.open("rb") as handle:
        name = default_storage.save(f"videos/{video.pk}/video.mp4", File(handle))
    VideoResult.objects.create(run=video, video=name, duration_seconds=2.0, width=320, height=240)
    return podcast, video


@pytest.fixture(params=["redirect", "stream"])
def web(request, s3_media, broker_url) -> Iterator[str]:
    """The development server with the bucket's environment and one download mode."""
    process, base = start_web(broker_url, **s3_media.env(MEDIA_S3_DOWNLOAD=request.param))
    try:
        yield base
    finally:
        process.stop()


def loaded(page, selector: str) -> dict:
    """Wait until the media element has its metadata (or fails); return what it knows."""
    page.wait_for_function(
        f"() => {{ const m = document.querySelector('{selector}'); "
        "return m && (m.readyState >= 1 || m.error); }",
        timeout=30_000,
    )
    return page.eval_on_selector(
        selector,
        "m => ({error: m.error && m.error.code, duration: m.duration, "
        "width: m.videoWidth || 0, height: m.videoHeight || 0, src: m.currentSrc})",
    )


def test_the_admin_players_load_media_from_the_bucket(browser, stored_runs, web):
    podcast, video = stored_runs
    page = browser.new_page()
    page.goto(f"{web}/admin/login/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{web}/admin/")

    page.goto(f"{web}/admin/podcast/podcastrun/{podcast.pk}/change/")
    audio = loaded(page, "audio")
    assert audio["error"] is None, audio
    assert audio["duration"] == pytest.approx(2.0, abs=0.2)

    page.goto(f"{web}/admin/video/videorun/{video.pk}/change/")
    picture = loaded(page, "video")
    assert picture["error"] is None, picture
    assert (picture["width"], picture["height"]) == (320, 240)
    assert picture["duration"] == pytest.approx(2.0, abs=0.2)
    # The player seeks: a jump near the end is answered (a byte range, from the bucket or the web).
    page.eval_on_selector("video", "m => { m.currentTime = 1.5; }")
    page.wait_for_function("() => !document.querySelector('video').seeking", timeout=30_000)
