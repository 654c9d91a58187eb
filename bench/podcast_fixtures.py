"""The podcast run the podcast and storage benchmarks both generate: a long, varied source."""

from __future__ import annotations

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
