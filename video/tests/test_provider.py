"""The waiting path: compose handed to a provider (a local job server), polled as the scan does.

The first parts run here in-process (`task.apply`), with the provider configured only in this
process; the poll then sends `video.fetch_remote` through the real broker to the real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from engines.media import probe
from runs import artifacts, lifecycle, maintenance
from runs.models import RunStatus
from runs.tests.helpers import wait_for
from video import steps, tasks
from video.models import VideoResult, VideoRun

from .conftest import CAST, SHORT_SCRIPT, wait_finished
from .job_server import JobServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def provider(settings):
    with JobServer() as server:
        settings.VIDEO_PROVIDER_URL = server.url
        settings.VIDEO_PROVIDER_KEY = server.key
        yield server


def handed_to_provider(user) -> VideoRun:
    """A run claimed as `video.generate` would, its parts run up to the hand-off."""
    run = VideoRun.objects.create(
        owner=user, title="Remote", characters=CAST, script=SHORT_SCRIPT, resolution="640x360"
    )
    claimed = lifecycle.claim(VideoRun, str(run.pk))
    assert claimed is not None
    return run_canvas(claimed)


def run_canvas(run: VideoRun) -> VideoRun:
    """The parts of the run's current attempt, here in-process, up to the hand-off."""
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

    tasks.poll_remote(run)  # the first poll finds the job pending; the provider starts on it
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
    assert not VideoResult.objects.filter(run=run).exists()
    assert "provider job" not in run.checkpoints  # a retry of the run submits a new job


def test_a_waiting_run_cancelled_is_never_resumed(user, provider):
    run = handed_to_provider(user)
    assert lifecycle.request_cancel(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED

    provider.jobs[run.remote_job_id].status = "done"  # the provider finishing late changes nothing
    tasks.poll_remote(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_an_unreachable_provider_leaves_the_run_waiting(user, provider, settings):
    run = handed_to_provider(user)
    settings.VIDEO_PROVIDER_URL = "http://127.0.0.1:9"  # nothing listens there
    tasks.poll_remote(run)
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


def test_a_job_is_submitted_once_even_when_the_parts_after_it_are_retried(user, provider):
    run = handed_to_provider(user)
    assert run.status == RunStatus.WAITING, (run.message, run.error)
    job_id = run.remote_job_id
    frame = run.checkpoints["frame 1"]
    drawn = artifacts.storage().get_modified_time(frame)
    wait_for(
        lambda: steps.poll_provider(run) is not None,
        timeout=120,
        interval=0.5,
        what="the provider to finish the job",
    )
    # The scan resumes the run, but the worker sent to collect the video dies before it starts:
    # the run goes stale, and the timeout check's re-dispatch claims it for a new attempt.
    resumed = lifecycle.transition(
        run,
        RunStatus.RUNNING,
        only_from=frozenset({RunStatus.WAITING}),
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    assert resumed
    retaken = lifecycle.claim(VideoRun, str(run.pk))
    assert retaken is not None and retaken.attempt == 2

    run = run_canvas(retaken)  # the whole canvas again: compose waits on the job it has
    assert run.status == RunStatus.WAITING, (run.message, run.error)
    assert run.remote_job_id == job_id
    assert (provider.submits, len(provider.jobs)) == (1, 1)
    assert artifacts.storage().get_modified_time(frame) == drawn  # nothing drawn twice either

    provider.busy_downloads = 1  # and the collecting part fails once: it is retried alone
    poll_until_moved(run)
    wait_finished(run)
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2), (run.message, run.error)
    assert (provider.submits, len(provider.jobs), provider.downloads) == (1, 1, 2)
    result = VideoResult.objects.get(run=run)
    assert probe(result.video.path).first("video").height == 360
    assert result.images.count() == len(CAST)


def test_a_retry_after_the_provider_failed_the_job_submits_a_new_one(user, provider, monkeypatch):
    provider.fail_jobs = True
    run = handed_to_provider(user)
    poll_until_moved(run)
    assert run.status == RunStatus.FAILED

    provider.fail_jobs = False
    # The worker has no provider configured: the retried attempt runs here, not there.
    monkeypatch.setattr(lifecycle, "dispatch_on_commit", lambda run: None)
    assert lifecycle.retry(run)
    retaken = lifecycle.claim(VideoRun, str(run.pk))
    assert retaken is not None and retaken.attempt == 2
    run = run_canvas(retaken)
    assert run.status == RunStatus.WAITING, (run.message, run.error)
    assert (provider.submits, len(provider.jobs)) == (2, 2)
