from __future__ import annotations

from pathlib import Path

import pytest

from runs.models import TERMINAL
from runs.tests.helpers import wait_for
from video.models import VideoRun

CAST = [
    {"name": "Ada", "description": "a lighthouse keeper in a blue coat"},
    {"name": "Ben", "description": "a red-haired fisherman", "voice": "en-gb"},
]
SHORT_SCRIPT = [
    {"speaker": "Ada", "text": "The tide turns at dawn.", "setting": "a harbour at sunrise"},
    {"speaker": "Ben", "text": "Then we sail before the gulls wake."},
    {"speaker": "Ada", "text": "Bring the lantern."},
]


@pytest.fixture
def video_body() -> dict:
    """A short video: three scenes at the smallest resolution, to spare the shared cores."""
    return {
        "title": "Before the gulls",
        "characters": CAST,
        "script": SHORT_SCRIPT,
        "resolution": "640x360",
    }


def wait_finished(run: VideoRun, timeout: float = 180) -> VideoRun:
    def finished():
        run.refresh_from_db()
        return run.status in TERMINAL

    wait_for(finished, timeout=timeout, interval=0.3, what=f"video run {run.pk} to finish")
    return run


def fetch(client, url: str, path: Path) -> Path:
    """Download a media URL through the API into `path`."""
    answer = client.get(url)
    assert answer.status_code == 200, (answer.status_code, getattr(answer, "content", b"")[:200])
    path.write_bytes(b"".join(answer.streaming_content))
    return path
