"""A podcast and a video through the API with MEDIA_STORAGE=s3, against a real SeaweedFS: the
worker (a broker, a MEDIA_ROOT and a temporary folder of its own, so it shares no disk with this
process) writes every artifact to the bucket; the downloads redirect to presigned URLs whose bytes
probe as MP3, MP4 and PNG, and the streaming mode answers byte ranges from the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from engines.media import probe
from ops.testing import RedisServer, ServiceProcess, broker_of, wait_for
from ops.testing_storage import SeaweedFS, start_s3_worker
from podcast.models import EpisodeProfile
from podcast.profiles import seed_profiles
from runs.models import TERMINAL, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = (
    "Honeybees keep their hive at about thirty-five degrees while the brood develops. A forager "
    "tells her sisters where flowers are with the waggle dance. Bees make honey by evaporating "
    "nectar until it holds less than a fifth water."
)
CAST = [
    {"name": "Ada", "description": "a lighthouse keeper in a blue coat"},
    {"name": "Ben", "description": "a red-haired fisherman", "voice": "en-gb"},
]
SCRIPT = [
    {"speaker": "Ada", "text": "The tide turns at dawn.", "setting": "a harbour at sunrise"},
    {"speaker": "Ben", "text": "Then we sail before the gulls wake."},
]


@pytest.fixture
def s3_worker(s3_media: SeaweedFS) -> Iterator[ServiceProcess]:
    """A worker on a broker of this test's own (the session worker keeps its media on the local
    disk and must not take these runs), with the bucket's environment and no shared folder."""
    redis = RedisServer().start()
    worker = start_s3_worker(redis.url, s3_media)
    try:
        with broker_of(redis.url):
            yield worker
    finally:
        worker.stop()
        redis.stop()


def finished(api, url: str, timeout: float = 240) -> dict:
    def done() -> dict:
        body = api.get(url).json()
        return body if body["status"] in TERMINAL else {}

    run = wait_for(done, timeout=timeout, interval=0.5, what=f"{url} to finish")
    assert run["status"] == RunStatus.SUCCEEDED, (run["message"], run.get("error"))
    return run


def fetch_presigned(api, url: str, path: Path, s3: SeaweedFS) -> Path:
    """GET the API's download URL: a redirect to the bucket, fetched with no credentials."""
    reply = api.get(url)
    assert reply.status_code == 302, (reply.status_code, getattr(reply, "content", b"")[:200])
    location = reply["Location"]
    assert location.startswith(f"{s3.endpoint}/{s3.bucket}/") and "X-Amz-Signature=" in location
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200, fetched.text[:300]
    path.write_bytes(fetched.content)
    return path


def not_on_this_disk(name: str) -> bool:
    return not (Path(settings.MEDIA_ROOT) / name).exists()


def test_a_podcast_is_stored_in_the_bucket_and_downloaded_from_it(
    api, s3_media, s3_worker, settings, tmp_path
):
    seed_profiles()
    EpisodeProfile.objects.create(slug="short", name="Short", segments=2, target_words=50,
                                  intro="This is {episode}.", outro="Bye.")  # fmt: skip
    source = api.post("/api/sources/", {"title": "Bees", "content": SOURCE}, format="json")
    assert source.status_code == 201, source.json()
    body = {"episode_profile": "short", "speaker_profile": "two_hosts",
            "episode_name": "Bees in the bucket", "source_ids": [source.json()["id"]]}  # fmt: skip
    accepted = api.post("/api/podcasts/", body, format="json")
    assert accepted.status_code == 202, accepted.json()
    run = finished(api, accepted.json()["url"])
    run_id = run["id"]

    keys = s3_media.keys("podcasts/")
    mp3_keys = [key for key in keys if run_id in key and key.endswith(".mp3")]
    assert len(mp3_keys) == 1, keys
    assert not_on_this_disk(mp3_keys[0])

    settings.MEDIA_S3_DOWNLOAD = "redirect"
    mp3 = fetch_presigned(api, run["result"]["audio_url"], tmp_path / "episode.mp3", s3_media)
    info = probe(mp3)
    sound = info.first("audio")
    assert sound is not None and sound.codec == "mp3"
    assert info.duration_seconds == pytest.approx(run["result"]["duration_seconds"], abs=0.05)

    settings.MEDIA_S3_DOWNLOAD = "stream"
    size = mp3.stat().st_size
    part = api.get(run["result"]["audio_url"], HTTP_RANGE="bytes=0-1023")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 0-1023/{size}"
    assert b"".join(part.streaming_content) == mp3.read_bytes()[:1024]


def test_a_video_is_stored_in_the_bucket_and_downloaded_from_it(
    api, s3_media, s3_worker, settings, tmp_path
):
    body = {"title": "Bucket harbour", "characters": CAST, "script": SCRIPT,
            "resolution": "640x360"}  # fmt: skip
    accepted = api.post("/api/videos/", body, format="json")
    assert accepted.status_code == 202, accepted.json()
    run = finished(api, accepted.json()["url"])
    run_id, result = run["id"], run["result"]

    keys = s3_media.keys(f"videos/{run_id}/")
    assert any(key.endswith(".mp4") for key in keys), keys
    assert sum(key.endswith(".png") for key in keys) >= 2, keys
    assert all(not_on_this_disk(key) for key in keys)

    settings.MEDIA_S3_DOWNLOAD = "redirect"
    video = probe(fetch_presigned(api, result["video_url"], tmp_path / "video.mp4", s3_media))
    picture, sound = video.first("video"), video.first("audio")
    assert picture is not None and sound is not None
    assert (picture.codec, sound.codec) == ("h264", "aac")
    assert (picture.width, picture.height) == (640, 360)
    assert video.duration_seconds == pytest.approx(result["duration_seconds"], abs=0.05)
    portrait = fetch_presigned(api, result["images"][0]["url"], tmp_path / "ada.png", s3_media)
    assert portrait.read_bytes().startswith(b"\x89PNG")

    settings.MEDIA_S3_DOWNLOAD = "stream"
    whole = (tmp_path / "video.mp4").read_bytes()
    tail = api.get(result["video_url"], HTTP_RANGE="bytes=-100")
    assert tail.status_code == 206
    assert tail["Content-Range"] == f"bytes {len(whole) - 100}-{len(whole) - 1}/{len(whole)}"
    assert b"".join(tail.streaming_content) == whole[-100:]
