#!/usr/bin/env python
"""The nightly orphan sweep on 20,000 files: the old full walk against the new pass.

2,000 podcast runs with 10 files each, named as the podcast steps name theirs (`podcasts/<id>.mp3`,
the result's file, and `podcasts/<id>/line-0000N.wav` x9), on the filesystem storage, plus a few
files without an id in `notes/` and `videos/`. Each round prunes 50 of the runs, then times:
- new: `ops.artifacts.nightly_pass`, the cleanup's step (the 50 runs recorded at their deletion,
  their files deleted by run-id prefix; no reconciliation is due);
- old: the walk runs.cleanup did before (os.walk over MEDIA_ROOT, a stat and a lookup per file,
  runs/maintenance.py `remove_orphan_files` at 12f9264, copied below), over the same 500 orphans;
- reconcile: `ops.artifacts.reconcile`, the same full walk through the storage API (what now runs
  only every ARTIFACT_RECONCILE_DAYS, in bounded passes), unbounded here.
- floor: the 500 files unlinked by name, nothing else: what deleting them costs on this disk.
The 500 files are written again before each measurement; the order of old and new alternates;
one warm-up round is not counted.

    .venv/bin/python bench/orphans.py [--runs 2000] [--pruned 50] [--rounds 5] [--media-parent DIR]

Environment: DATABASE_URL (default a bench_orphans database on the local MariaDB, created,
migrated and dropped at the end unless --keep); MEDIA_ROOT is a temporary folder under
--media-parent (the system's temporary folder unless told), removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import configure, database_name, mysql, prepare_database

configure("bench_orphans", broker_db=11, EXTRA_APPS="runs.tests.sleeper")
MEDIA = ""  # a temporary folder under --media-parent, made MEDIA_ROOT before Django starts
DB_NAME = database_name()
FILES_PER_RUN = 10


def names_of(run_id) -> list[str]:
    lines = [f"podcasts/{run_id}/line-{i:05d}.wav" for i in range(1, 10)]
    return [f"podcasts/{run_id}.mp3", *lines]


def write_files(run_ids) -> None:
    """Small files, two hours old (past the orphan grace), those missing only, then synced: a
    file rewritten or still being written back makes its unlink wait on the disk, whichever
    pass deletes it."""
    then = time.time() - 7200
    for run_id in run_ids:
        for name in names_of(run_id):
            path = Path(MEDIA) / name
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x" * 64)
                os.utime(path, (then, then))
    os.sync()


def make_runs(owner, count: int, *, days_ago: float) -> list:
    """Finished podcast runs with their result rows and files."""
    from django.utils import timezone

    from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, SpeakerProfile
    from runs.models import RunStatus

    finished = timezone.now() - timedelta(days=days_ago)
    profiles = {
        "episode_profile": EpisodeProfile.objects.get(slug="default"),
        "speaker_profile": SpeakerProfile.objects.get(slug="two_hosts"),
    }
    runs = PodcastRun.objects.bulk_create(
        PodcastRun(owner=owner, status=RunStatus.SUCCEEDED, finished_at=finished, **profiles)
        for _ in range(count)
    )
    PodcastResult.objects.bulk_create(
        PodcastResult(
            run=run, audio=f"podcasts/{run.pk}.mp3", duration_seconds=1, processing_time_seconds=1
        )
        for run in runs
    )
    ids = [run.pk for run in runs]
    write_files(ids)
    return ids


def prune() -> int:
    """The cleanup's prune: rows past retention deleted, each deletion recorded (post_delete)."""
    from django.utils import timezone

    from podcast.models import PodcastRun
    from runs import maintenance

    return maintenance.prune_runs(PodcastRun, timezone.now() - timedelta(days=30), 200)


# The walk runs.cleanup did before the sweep (runs/maintenance.py at 12f9264), for the comparison.
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def old_remove_orphan_files(grace_seconds: float) -> int:
    from django.conf import settings
    from django.utils import timezone

    from ops.artifacts import existing_ids

    root = Path(settings.MEDIA_ROOT)
    oldest = timezone.now().timestamp() - grace_seconds
    candidates = list(old_files_named_by_id(root, oldest))
    removed = 0
    for start in range(0, len(candidates), 500):
        batch = candidates[start : start + 500]
        owned = existing_ids({file_id for file_id, _ in batch})
        for file_id, path in batch:
            if file_id not in owned:
                path.unlink(missing_ok=True)
                folder = path.parent
                if folder != root and UUID_RE.fullmatch(folder.name):
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                removed += 1
    return removed


def old_files_named_by_id(root: Path, oldest: float):
    for folder, _, filenames in os.walk(root):
        for filename in filenames:
            path = Path(folder) / filename
            found = UUID_RE.search(str(path.relative_to(root)))
            if found and path.stat().st_mtime < oldest:
                yield uuid.UUID(found.group()), path


def timed(work) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return (time.perf_counter() - started) * 1000, result


def one_round(owner, pruned: int, old_first: bool) -> dict[str, float]:
    from ops import artifacts

    doomed = make_runs(owner, pruned, days_ago=40)
    assert prune() == pruned
    expected = pruned * FILES_PER_RUN
    times = {}

    def new() -> None:
        write_files(doomed)  # idempotent: the files are there, or there again
        times["new"], removed = timed(artifacts.nightly_pass)
        assert removed == expected, f"the new pass removed {removed}, not {expected}"

    def old() -> None:
        write_files(doomed)
        times["old"], removed = timed(lambda: old_remove_orphan_files(3600))
        assert removed == expected, f"the old walk removed {removed}, not {expected}"

    def floor() -> None:
        write_files(doomed)
        paths = [Path(MEDIA) / name for run_id in doomed for name in names_of(run_id)]

        def unlink_all() -> None:
            for path in paths:
                path.unlink()

        times["floor"], _ = timed(unlink_all)

    for step in (old, floor, new) if old_first else (new, floor, old):
        step()
    write_files(doomed)
    times["reconcile"], done = timed(lambda: artifacts.reconcile(limit=10**9, grace_seconds=3600))
    assert done.removed == expected and done.finished, done
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--pruned", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument(
        "--media-parent",
        default=tempfile.gettempdir(),
        help="where the files go (/dev/shm takes a disk shared with other work out of the figures)",
    )
    options = parser.parse_args()
    global MEDIA
    MEDIA = os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(
        prefix="bench-orphans-media-", dir=options.media_parent
    )
    if DB_NAME is None:
        sys.exit("bench/orphans.py measures MariaDB/MySQL: set DATABASE_URL=mysql://...")
    prepare_database(fresh=True)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user("bench")
    started = time.monotonic()
    make_runs(owner, options.runs - options.pruned, days_ago=1)  # the live ones
    for folder in ("notes", "videos"):  # files without an id: never touched
        (Path(MEDIA) / folder).mkdir(exist_ok=True)
        for index in range(5):
            (Path(MEDIA) / folder / f"readme-{index}.txt").write_text("kept")
    print(f"wrote {options.runs * FILES_PER_RUN:,} files in {time.monotonic() - started:.1f} s")
    rounds: list[dict[str, float]] = []
    try:
        one_round(owner, options.pruned, old_first=False)  # warm-up: caches, freshly written files
        for number in range(options.rounds):
            rounds.append(one_round(owner, options.pruned, old_first=number % 2 == 1))
            print(
                f"  round {number + 1}: "
                + ", ".join(f"{name} {ms:.1f} ms" for name, ms in rounds[-1].items()),
                flush=True,
            )
    finally:
        shutil.rmtree(MEDIA, ignore_errors=True)
        if not options.keep:
            from django.db import connections

            connections.close_all()
            mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    report(options, rounds)


def report(options, rounds: list[dict[str, float]]) -> None:
    median = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    files = options.runs * FILES_PER_RUN
    print(
        f"\n{files:,} files of {options.runs:,} runs, {options.pruned} runs pruned "
        f"({options.pruned * FILES_PER_RUN} files to delete), median of {options.rounds} rounds:"
    )
    print("| pass | wall time | per file in storage |")
    print("|---|---|---|")
    labels = {
        "old": "old: os.walk of MEDIA_ROOT (before)",
        "reconcile": "full reconciliation, storage API (rare)",
        "new": "new nightly pass: deleted runs by prefix",
        "floor": "floor: unlink the 500 files by name",
    }
    for name, label in labels.items():
        print(f"| {label} | {median[name]:.1f} ms | {median[name] * 1000 / files:.1f} µs |")
    print(f"ratio old / new: {median['old'] / median['new']:.1f}x")
    beyond = {name: median[name] - median["floor"] for name in ("old", "new")}
    print(
        f"beyond the floor (finding the files, not deleting them): old {beyond['old']:.1f} ms, "
        f"new {beyond['new']:.1f} ms, ratio {beyond['old'] / beyond['new']:.1f}x"
    )


if __name__ == "__main__":
    main()
