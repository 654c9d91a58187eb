"""A cancel during a long render stops the render now: the ffmpeg child of the worker is killed,
the run ends `cancelled` within seconds, and no temporary folder is left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ops.testing import RedisServer, broker_of, start_worker, wait_for
from runs import artifacts
from runs.models import RunStatus
from video.models import VideoRun

from .conftest import CAST

pytestmark = pytest.mark.django_db(transaction=True)

# About 60 s of narration: twelve lines of some fifteen words at 165 words a minute.
LONG_SCRIPT = [
    {
        "speaker": ("Ada", "Ben")[index % 2],
        "text": f"Line {index + 1}: the tide keeps its own slow time, and the harbour lights "
        "answer the fishing boats one by one.",
        "setting": "a harbour at night" if index % 3 == 0 else "",
    }
    for index in range(12)
]


def ffmpegs_of(worker_pid: int) -> list[int]:
    """Pids of the ffmpeg processes the worker started: those in its session (the worker leads a
    session of its own) whose program is ffmpeg."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            session = os.getsid(int(entry.name))
            program = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if (
            session == worker_pid
            and b"ffmpeg" in Path(program.decode(errors="replace")).name.encode()
        ):
            found.append(int(entry.name))
    return found


def test_a_cancel_during_a_long_render_kills_ffmpeg_and_ends_cancelled_now(api, tmp_path: Path):
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    # A broker of the test's own, so only this worker (whose ffmpeg the test watches) renders.
    redis = RedisServer().start()
    worker = start_worker(redis.url, TMPDIR=str(worker_tmp))
    try:
        with broker_of(redis.url):
            render_and_cancel(api, worker, worker_tmp)
    finally:
        worker.stop()
        redis.stop()


def render_and_cancel(api, worker, worker_tmp: Path) -> None:
    """Render a long video on `worker`, cancel it in the middle of ffmpeg, check the aftermath."""
    body = {"title": "Night tide", "characters": CAST, "script": LONG_SCRIPT,
            "resolution": "1280x720"}  # fmt: skip
    answer = api.post("/api/videos/", body, format="json")
    assert answer.status_code == 202, answer.json()
    run = VideoRun.objects.get(pk=answer.json()["id"])

    def rendering() -> bool:
        run.refresh_from_db()
        assert run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED), run.message
        return run.stage == "composing video" and bool(ffmpegs_of(worker.process.pid))

    wait_for(rendering, timeout=180, interval=0.1, what="the render's ffmpeg to start")
    narration_ends = run.checkpoints["narration"]["spans"][-1][1]
    assert narration_ends > 50, "a render long enough to be cancelled in the middle"
    time.sleep(1)  # well inside the render
    assert ffmpegs_of(worker.process.pid), "the render ended before the cancel"
    asked = time.monotonic()
    answer = api.post(f"/api/videos/{run.pk}/cancel/")
    assert answer.status_code == 202, answer.content

    def cancelled() -> bool:
        run.refresh_from_db()
        return run.status == RunStatus.CANCELLED

    wait_for(cancelled, timeout=15, interval=0.05, what="the run to end cancelled")
    latency = time.monotonic() - asked
    wait_for(lambda: not ffmpegs_of(worker.process.pid), timeout=5, what="ffmpeg to go")
    gone = time.monotonic() - asked
    print(f"\ncancel latency: run cancelled after {latency:.2f} s, ffmpeg gone by {gone:.2f} s")

    assert run.message == "Cancelled."
    # (pymp-* is the prefork pool's own folder, there while the worker lives)
    left = [path for path in worker_tmp.iterdir() if not path.name.startswith("pymp-")]
    assert not left, f"temporary files left behind: {left}"
    saved = [name.rsplit("/", 1)[1] for name in artifacts.names_under(f"videos/{run.pk}")]
    assert "scene-0.png" in saved  # the earlier parts' files are there, the render's is not
    assert not [name for name in saved if "video" in name], "a partial render left behind"
