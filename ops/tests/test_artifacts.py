"""The artifact sweep on the real database, the filesystem storage and, for the nightly task, the
session's real worker."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops import artifacts
from ops.models import DeletedRun, SweepCursor
from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, SpeakerProfile
from podcast.profiles import seed_profiles
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepResult, SleepRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    """A MEDIA_ROOT of this test's own: a reconciliation must never touch other tests' files."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def artifact(name: str, *, age_seconds: float = 7200) -> Path:
    """A file under MEDIA_ROOT, old enough for the reconciliation's grace unless told."""
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"artifact")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def finished_run(user, *, days_ago: float) -> SleepRun:
    run = SleepRun.objects.create(owner=user, status=RunStatus.SUCCEEDED)
    SleepRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    SleepResult.objects.create(run=run, steps_done=1)
    return run


def podcast_run(user) -> PodcastRun:
    """A finished podcast as the worker leaves it: the MP3 (its result's file) and line WAVs."""
    seed_profiles()
    run = PodcastRun.objects.create(
        owner=user,
        status=RunStatus.SUCCEEDED,
        episode_profile=EpisodeProfile.objects.get(slug="default"),
        speaker_profile=SpeakerProfile.objects.get(slug="two_hosts"),
        episode_name="Swept",
    )
    PodcastResult.objects.create(
        run=run,
        audio=f"podcasts/{run.pk}.mp3",
        duration_seconds=1.0,
        processing_time_seconds=0.5,
    )
    return run


def podcast_files(run) -> list[Path]:
    return [
        artifact(f"podcasts/{run.pk}.mp3"),
        artifact(f"podcasts/{run.pk}/line-00001.wav"),
        artifact(f"podcasts/{run.pk}/line-00002.wav"),
    ]


# The nightly pass over deleted runs


@pytest.mark.usefixtures("celery_worker")
def test_the_nightly_cleanup_through_the_worker_removes_a_pruned_runs_files_only(user):
    # The worker's MEDIA_ROOT is the session's (its environment): every name here is unique.
    old = finished_run(user, days_ago=40)
    live = finished_run(user, days_ago=2)
    stranger = uuid.uuid4()  # no row and no recorded deletion: only a reconciliation sees it
    pruned = [
        artifact(f"sleeper/{old.pk}/out.bin"),
        artifact(f"podcasts/{old.pk}/line-00001.wav"),
        artifact(f"videos/{old.pk}/portraits/host.png"),
    ]
    kept = [
        artifact(f"podcasts/{live.pk}/line-00001.wav"),
        artifact(f"videos/{stranger}/video.mp4"),
        artifact(f"notes/kept-{uuid.uuid4().hex}.txt"),
    ]
    try:
        result = current_app.send_task("runs.cleanup", kwargs={"retention_days": 30})
        outcome = result.get(timeout=60)

        # The prune deletes the run's own folder (sleeper/<id>/) itself; the sweep the others.
        assert outcome["runs"] == 1 and outcome["orphan_files"] == len(pruned) - 1
        assert not any(path.exists() for path in pruned)
        assert not any(path.parent.exists() for path in pruned)  # the run's folders too
        assert all(path.exists() for path in kept)
        assert not DeletedRun.objects.exists()  # handled rows go
    finally:
        for path in pruned + kept:
            shutil.rmtree(path.parent, ignore_errors=True)


def test_deleting_a_run_in_the_admin_queues_its_files_for_the_next_pass(
    media_root, django_user_model
):
    staff = django_user_model.objects.create_superuser("root", password="a-long-password-9")
    run = podcast_run(staff)
    files = podcast_files(run)
    client = Client()
    client.force_login(staff)

    page = client.post(f"/admin/podcast/podcastrun/{run.pk}/delete/", {"post": "yes"})

    assert page.status_code == 302 and not PodcastRun.objects.filter(pk=run.pk).exists()
    recorded = set(DeletedRun.objects.values_list("run_id", "name"))
    # The run itself, and its result's file outside the run's folder (the MP3).
    assert recorded == {(run.pk, ""), (run.pk, f"podcasts/{run.pk}.mp3")}
    assert all(path.exists() for path in files)  # nothing goes before the pass

    assert artifacts.nightly_pass() == len(files)
    assert not any(path.exists() for path in files)
    assert not (media_root / "podcasts" / str(run.pk)).exists()
    assert not DeletedRun.objects.exists()


def test_an_orm_delete_queues_the_run_and_a_rolled_back_one_queues_nothing(media_root, user):
    gone, kept = finished_run(user, days_ago=1), finished_run(user, days_ago=1)
    gone_file = artifact(f"sleeper/{gone.pk}/a.bin")
    kept_file = artifact(f"sleeper/{kept.pk}/a.bin")
    SleepRun.objects.filter(pk=gone.pk).delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        kept.delete()
        raise RuntimeError("changed my mind")

    assert list(DeletedRun.objects.values_list("run_id", flat=True)) == [gone.pk]
    assert artifacts.sweep_deleted().removed == 1
    assert not gone_file.exists() and kept_file.exists()


def test_a_result_deleted_alone_leaves_its_live_runs_files(media_root, user):
    run = podcast_run(user)
    files = podcast_files(run)
    PodcastResult.objects.filter(run=run).delete()  # the run may write the same names again
    assert DeletedRun.objects.filter(run_id=run.pk).exists()

    assert artifacts.sweep_deleted().removed == 0
    assert all(path.exists() for path in files)
    assert not DeletedRun.objects.exists()


def test_only_runs_whose_result_went_alone_are_looked_up(media_root, user):
    # A run's own deletion row says it is gone; a result's row alone needs a look-up.
    kept, gone = podcast_run(user), podcast_run(user)
    kept_files, gone_files = podcast_files(kept), podcast_files(gone)
    PodcastResult.objects.filter(run=kept).delete()
    PodcastRun.objects.filter(pk=gone.pk).delete()

    with CaptureQueriesContext(connection) as queries:
        assert artifacts.sweep_deleted().removed == len(gone_files)

    assert all(path.exists() for path in kept_files)
    assert not any(path.exists() for path in gone_files)
    lookups = [q["sql"] for q in queries if q["sql"].startswith("SELECT `podcast_podcastrun`")]
    assert lookups and all(str(kept.pk) in sql and str(gone.pk) not in sql for sql in lookups)
    assert not DeletedRun.objects.exists()


def test_a_recorded_name_without_the_run_id_is_never_deleted(media_root, user):
    run = podcast_run(user)
    shared = artifact("podcasts/default-cover.mp3")
    PodcastResult.objects.filter(run=run).update(audio="podcasts/default-cover.mp3")
    PodcastRun.objects.filter(pk=run.pk).delete()
    assert DeletedRun.objects.filter(name="podcasts/default-cover.mp3").exists()

    artifacts.sweep_deleted()
    assert shared.exists()


def test_each_pass_handles_a_bounded_number_and_the_next_resumes(media_root, user, settings):
    settings.ARTIFACT_SWEEP_BATCH = 3
    runs = [finished_run(user, days_ago=1) for _ in range(5)]
    files = [artifact(f"sleeper/{run.pk}/out-{i}.bin") for run in runs for i in range(2)]
    with CaptureQueriesContext(connection) as queries:
        SleepRun.objects.filter(pk__in=[run.pk for run in runs]).delete()
    inserts = [q for q in queries if q["sql"].startswith("INSERT INTO `ops_deletedrun`")]
    assert len(inserts) == 1  # one deletion, one INSERT, however many runs
    assert DeletedRun.objects.count() == 5

    assert artifacts.sweep_deleted() == artifacts.Swept(rows=3, removed=6)  # 2 files a run
    assert DeletedRun.objects.count() == 2
    assert sum(path.exists() for path in files) == 4

    assert artifacts.sweep_deleted() == artifacts.Swept(rows=2, removed=4)
    assert not any(path.exists() for path in files)
    assert artifacts.sweep_deleted() == artifacts.Swept(rows=0, removed=0)


def test_two_passes_at_once_share_the_work(media_root, user, settings):
    settings.ARTIFACT_SWEEP_BATCH = 3
    runs = [finished_run(user, days_ago=1) for _ in range(6)]
    files = [artifact(f"sleeper/{run.pk}/out-{i}.bin") for run in runs for i in range(2)]
    SleepRun.objects.all().delete()
    barrier, swept = threading.Barrier(2), []

    def sweep() -> None:
        try:
            barrier.wait()
            swept.append(artifacts.sweep_deleted())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # SKIP LOCKED: each run's rows went to one pass, so no file was counted twice.
    assert sum(s.rows for s in swept) == 6 and sum(s.removed for s in swept) == len(files)
    assert not any(path.exists() for path in files) and not DeletedRun.objects.exists()


def test_the_nightly_pass_sweeps_batch_after_batch_within_its_time(media_root, user, settings):
    settings.ARTIFACT_SWEEP_BATCH = 2
    runs = [finished_run(user, days_ago=1) for _ in range(7)]
    files = [artifact(f"sleeper/{run.pk}/out.bin") for run in runs]
    SleepRun.objects.all().delete()

    settings.ARTIFACT_SWEEP_SECONDS = 0  # spent after the first pass
    assert artifacts.nightly_pass() == 2
    settings.ARTIFACT_SWEEP_SECONDS = 60
    assert artifacts.nightly_pass() == 5  # three more passes: 2, 2 and the last 1
    assert not any(path.exists() for path in files) and not DeletedRun.objects.exists()


# The full reconciliation


def test_the_reconciliation_removes_old_orphans_but_not_young_owned_or_unnamed_files(
    media_root, user
):
    owned = SleepRun.objects.create(owner=user)
    orphan = artifact(f"videos/{uuid.uuid4()}/portraits/host.png")
    young_orphan = artifact(f"podcasts/{uuid.uuid4()}.mp3", age_seconds=0)
    kept = artifact(f"podcasts/{owned.pk}.mp3")
    unnamed = artifact("notes/readme.txt")

    done = artifacts.reconcile(grace_seconds=3600)

    assert done == artifacts.ReconcilePass(visited=4, removed=1, finished=True)
    assert not orphan.exists() and not orphan.parent.parent.exists()  # its emptied folders too
    assert young_orphan.exists() and kept.exists() and unnamed.exists()
    cursor = SweepCursor.objects.get(name=artifacts.RECONCILE)
    assert cursor.position == "" and cursor.finished_at is not None


def test_a_bounded_reconciliation_resumes_at_its_cursor(media_root):
    orphans = sorted(
        [f"podcasts/{uuid.uuid4()}.mp3" for _ in range(3)]
        + [f"podcasts/{uuid.uuid4()}/line-0000{i}.wav" for i in range(2)]
        + [f"videos/{uuid.uuid4()}/video.mp4" for _ in range(2)],
        key=lambda name: name.split("/"),  # the walk's order
    )
    paths = [artifact(name) for name in orphans]

    passes = []
    while not passes or not passes[-1].finished:
        passes.append(artifacts.reconcile(limit=3))
        if len(passes) == 1:  # exactly the first three in the walk's order went
            assert [path.exists() for path in paths] == [False] * 3 + [True] * 4

    assert [(p.visited, p.removed) for p in passes] == [(3, 3), (3, 3), (1, 1)]
    assert not any(path.exists() for path in paths)


def test_the_nightly_pass_starts_a_reconciliation_only_when_one_is_due(media_root, settings):
    settings.ARTIFACT_RECONCILE_DAYS = 7
    orphan = artifact(f"videos/{uuid.uuid4()}/video.mp4")

    assert artifacts.nightly_pass() == 0  # the first pass starts the count, not a walk
    assert orphan.exists()
    SweepCursor.objects.update(finished_at=timezone.now() - timedelta(days=6))
    assert artifacts.nightly_pass() == 0
    SweepCursor.objects.update(finished_at=timezone.now() - timedelta(days=8))
    assert artifacts.nightly_pass() == 1
    assert not orphan.exists()


def test_the_command_walks_everything_in_passes(media_root):
    orphans = [artifact(f"videos/{uuid.uuid4()}/video.mp4") for _ in range(5)]
    unnamed = artifact("videos/intro.mp4")

    out = io.StringIO()
    call_command("reconcile_artifacts", "--files-per-pass", "2", stdout=out)

    assert "3 pass(es): 6 file(s) visited, 5 orphan(s) removed; walk finished." in out.getvalue()
    assert not any(path.exists() for path in orphans) and unnamed.exists()


def test_the_command_names_a_bad_option():
    with pytest.raises(CommandError, match="--files-per-pass"):
        call_command("reconcile_artifacts", "--files-per-pass", "0")


# The same in an S3 bucket (a SeaweedFS of the session's own)


def test_the_cleanup_removes_a_pruned_runs_objects_from_the_bucket_only(user, s3_media):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from runs import maintenance

    old = finished_run(user, days_ago=40)
    live = finished_run(user, days_ago=2)
    pruned = [
        f"sleeper/{old.pk}/out.bin",
        f"podcasts/{old.pk}/line-00001.wav",
        f"videos/{old.pk}/a.png",
    ]
    kept = [f"sleeper/{live.pk}/out.bin", f"podcasts/{live.pk}.mp3", "notes/kept.txt"]
    for name in pruned + kept:
        default_storage.save(name, ContentFile(b"artifact"))

    outcome = maintenance.cleanup(retention_days=30)

    assert outcome["runs"] == 1
    left = set(s3_media.keys())
    assert not left & set(pruned), left
    assert set(kept) <= left
