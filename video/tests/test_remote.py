"""The waiting path: compose handed to a provider (a local job server), polled as the scan does.

The first parts run here in-process (`task.apply`), with the provider configured only in this
process; the poll then sends `video.fetch_remote` through the real broker to the real worker.
"""

from __future__ import annotations

import pytest

from engines.media import probe
from runs import lifecycle, maintenance
from runs.models import RunStatus
from runs.tests.helpers import wait_for
from video import remote, tasks
from video.models import VideoResult, VideoRun

from .conftest import CAST, SHORT_SCRIPT, wait_finished
from .job_server import JobServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def provider(monkeypatch):
    with JobServer() as server:
        monkeypatch.setenv("VIDEO_PROVIDER_URL", server.url)
        monkeypatch.setenv("VIDEO_PROVIDER_KEY", server.key)
        yield server


def handed_to_provider(user) -> VideoRun:
    """A run claimed as `video.generate` would, its parts run up to the hand-off."""
    run = VideoRun.objects.create(
        owner=user, title="Remote", characters=CAST, script=SHORT_SCRIPT, resolution="640x360"
    )
    run = lifecycle.claim(VideoRun, str(run.pk))
    args = (str(run.pk), run.attempt)
    for part in (tasks.write_script, tasks.draw_characters, tasks.speak_narration):
        part.apply(args=args)
    tasks.compose_video.apply(args=args)
    run.refresh_from_db()
    return run


def poll_until_moved(run: VideoRun, poll=None) -> VideoRun:
    def moved():
        (poll or run.poll_remote)()  # the hook the scan calls for each waiting run
        run.refresh_from_db()
        return run.status != RunStatus.WAITING

    wait_for(moved, timeout=120, interval=0.5, what="the provider's job to end")
    return run


def test_a_run_waits_on_its_provider_job_and_the_poll_collects_the_video(user, provider, tmp_path):
    run = handed_to_provider(user)
    assert run.status == RunStatus.WAITING, (run.message, run.error)
    job = provider.jobs[run.remote_job_id]
    assert len(job.spec["scenes"]) == len(SHORT_SCRIPT)

    remote.poll(run)  # the first poll finds the job pending; the provider starts on it
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    assert "pending" in run.message

    poll_until_moved(run, poll=maintenance.scan)  # the scan itself, with its row locks
    wait_finished(run)
    assert run.status == RunStatus.SUCCEEDED, (run.message, run.error)
    assert job.polls >= 2
    result = VideoResult.objects.get(run=run)
    info = probe(result.video.path)
    narration = probe(result.audio.path)
    assert info.first("video").width == 640 and info.first("video").height == 360
    assert info.first("audio") is not None
    assert abs(info.duration_seconds - narration.duration_seconds) <= 0.5


def test_a_job_the_provider_fails_fails_the_run_with_its_reason(user, provider):
    provider.fail_jobs = True
    run = handed_to_provider(user)
    assert run.status == RunStatus.WAITING

    poll_until_moved(run)
    assert run.status == RunStatus.FAILED
    assert "content filter" in run.message
    assert not VideoResult.objects.get(run=run).video


def test_a_waiting_run_cancelled_is_never_resumed(user, provider):
    run = handed_to_provider(user)
    assert lifecycle.request_cancel(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED

    provider.jobs[run.remote_job_id].status = "done"  # the provider finishing late changes nothing
    remote.poll(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_an_unreachable_provider_leaves_the_run_waiting(user, provider, monkeypatch):
    run = handed_to_provider(user)
    monkeypatch.setenv("VIDEO_PROVIDER_URL", "http://127.0.0.1:9")  # nothing listens there
    remote.poll(run)
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    assert run.remote_job_id in provider.jobs


def test_a_busy_provider_is_retried_by_the_compose_part_alone(user, provider):
    provider.busy_submits = 2  # two 503s: transient, so compose retries itself, not the canvas
    run = handed_to_provider(user)
    assert run.status == RunStatus.WAITING, (run.message, run.error)
    assert provider.submits == 3
    assert run.attempt == 1
    assert len(provider.jobs) == 1
