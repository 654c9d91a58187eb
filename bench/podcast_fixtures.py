"""The podcast run the podcast and storage benchmarks both generate (a long, varied source), and
the timed generation of it as a worker does it."""

from __future__ import annotations

import time

SUBJECTS = ("The hive", "A forager", "The queen", "Each drone", "A nurse bee", "The colony")
VERBS = ("visits", "guards", "cleans", "warms", "maps", "feeds", "finds", "seals")
THINGS = ("the clover field", "the brood comb", "the north entrance", "the wax cells", "the pond")


def source_text(sentences: int) -> str:
    return " ".join(
        f"{SUBJECTS[i % 6]} number {i} {VERBS[i // 6 % 8]} {THINGS[i % 5]} before noon."
        for i in range(sentences)
    )


def make_run(owner, target_words: int):
    from podcast.models import EpisodeProfile, PodcastRun, Source, SpeakerProfile

    profile, _ = EpisodeProfile.objects.update_or_create(
        slug="bench", defaults={"name": "Benchmark", "segments": 12, "target_words": target_words,
                                "intro": "Welcome to {episode}.", "outro": "Goodbye."},
    )  # fmt: skip
    source, _ = Source.objects.get_or_create(
        owner=owner, title="bench", defaults={"content": source_text(600)}
    )
    run = PodcastRun.objects.create(
        owner=owner, episode_profile=profile, episode_name="Benchmark episode",
        speaker_profile=SpeakerProfile.objects.get(slug="default"),
    )  # fmt: skip
    run.sources.set([source])
    return run


def timed_generation(owner, target_words: int):
    """Claim a new run and generate it in this process: (seconds from the first step to the
    saved result, the run read again)."""
    from podcast import steps
    from podcast.models import PodcastRun
    from runs import lifecycle

    run = lifecycle.claim(PodcastRun, make_run(owner, target_words).pk)
    ctx = lifecycle.RunContext(run)
    try:
        started = time.perf_counter()
        steps.generate(run, ctx)
        seconds = time.perf_counter() - started
    finally:
        ctx.remove_tmp()
    run.refresh_from_db()
    return seconds, run
