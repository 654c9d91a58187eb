"""The provider client alone: plain HTTP against the local job server, no run and no database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engines.errors import EngineError, TransientEngineError
from engines.media import probe
from engines.tests.conftest import write_tone
from runs.tests.helpers import wait_for
from video import provider

from .job_server import JobServer


@pytest.fixture
def server():
    with JobServer() as stub:
        yield stub


@pytest.fixture
def job(tmp_path: Path) -> dict:
    """Two frames and a second of sound, as the compose part would send them."""
    frames = []
    for index, color in enumerate(("navy", "orange")):
        frames.append(tmp_path / f"frame-{index}.png")
        Image.new("RGB", (160, 90), color).save(frames[-1])
    scenes = [provider.JobScene(frame, 0.5, f"Line {i}") for i, frame in enumerate(frames)]
    audio = write_tone(tmp_path / "narration.wav", seconds=1.0)
    return {"title": "Two frames", "size": (160, 90), "fps": 25, "scenes": scenes, "audio": audio}


def test_a_job_is_submitted_polled_and_its_video_downloaded(server, job, tmp_path):
    config = provider.ProviderConfig(server.url, server.key)
    job_id = provider.submit(config, **job)
    assert server.jobs[job_id].spec["scenes"][1] == {
        "image": "scene-1",
        "seconds": 0.5,
        "subtitle": "Line 1",
    }
    assert provider.job_status(config, job_id).status == "pending"

    def done() -> provider.Job | None:
        status = provider.job_status(config, job_id)
        return status if status.status == "done" else None

    finished = wait_for(done, timeout=60, interval=0.2, what="the provider's render")
    video = tmp_path / "video.mp4"
    provider.download(finished.video_url, video)
    assert probe(video).first("video").width == 160


def test_a_refused_key_is_permanent_with_the_providers_reason(server, job):
    config = provider.ProviderConfig(server.url, "wrong-key")
    with pytest.raises(EngineError, match="missing or wrong API key") as caught:
        provider.submit(config, **job)
    assert not isinstance(caught.value, TransientEngineError)


def test_a_busy_provider_is_transient(server, job):
    server.busy_submits = 1
    with pytest.raises(TransientEngineError, match="503"):
        provider.submit(provider.ProviderConfig(server.url, server.key), **job)


def test_a_bad_download_link_is_permanent_and_its_signature_stays_out_of_the_message(
    server, job, tmp_path
):
    config = provider.ProviderConfig(server.url, server.key)
    job_id = provider.submit(config, **job)
    url = f"{server.url}/v1/jobs/{job_id}/video.mp4?signature=forged-secret"
    with pytest.raises(EngineError, match="403") as caught:
        provider.download(url, tmp_path / "video.mp4")
    assert "forged-secret" not in str(caught.value)


def test_no_provider_configured_is_said_plainly():
    with pytest.raises(EngineError, match="VIDEO_PROVIDER_URL"):
        provider.job_status(provider.ProviderConfig(""), "job-1")


def test_the_provider_client_imports_nothing_of_runs_or_django():
    script = "import sys, video.provider; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert "'runs'" not in loaded.stdout and "'django'" not in loaded.stdout, loaded.stdout
