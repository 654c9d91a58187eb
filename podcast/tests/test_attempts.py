"""Attempts of one podcast run: the engine calls are checkpointed, the result comes with success.

The attempts run here in-process (`task.apply`), with the local engines, so the test can stand
between two steps: another worker takes the run over just before the first attempt saves.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from podcast import steps, tasks
from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, SpeakerProfile
from runs import lifecycle
from runs.models import RunStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("short_profile", "contrast_speakers"),
]


def test_a_superseded_attempt_keeps_no_result_and_the_next_one_pays_for_nothing_again(
    user, source, settings, monkeypatch
):
    # Every heartbeat counts as stale: a second claim takes the run over at once, as the
    # timeout check's re-dispatch does after a worker stopped answering.
    settings.RUN_STALE_AFTER_SECONDS = -1
    run = PodcastRun.objects.create(
        owner=user,
        episode_profile=EpisodeProfile.objects.get(slug="short"),
        speaker_profile=SpeakerProfile.objects.get(slug="contrast"),
        episode_name="Bees at work",
    )
    run.sources.set([source])

    calls: Counter[str] = Counter()
    for name in ("write_outline", "write_transcript", "speak_line"):
        monkeypatch.setattr(steps, name, counted(calls, name, getattr(steps, name)))
    taken: list[PodcastRun | None] = []
    real_probe = steps.media.probe

    def probe_then_lose_the_run(path):
        if not taken:  # the first attempt has encoded its MP3; another worker takes the run
            taken.append(lifecycle.claim(PodcastRun, str(run.pk)))
        return real_probe(path)

    monkeypatch.setattr(steps.media, "probe", probe_then_lose_the_run)

    tasks.generate_podcast.apply(args=[str(run.pk)])

    run.refresh_from_db()
    assert taken[0] is not None and taken[0].attempt == 2
    assert (run.status, run.attempt) == (RunStatus.RUNNING, 2)
    assert not PodcastResult.objects.filter(run=run).exists()  # attempt 1 saved nothing
    lines = len(run.checkpoints["transcript"])
    speech = {f"speech {n}" for n in range(1, lines + 1)}
    assert set(run.checkpoints) == {"outline", "transcript", *speech}
    assert calls == {"write_outline": 1, "write_transcript": 1, "speak_line": lines}

    tasks.generate_podcast.apply(args=[str(run.pk)])  # the next delivery: attempt 3 resumes

    run.refresh_from_db()
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 3), (run.message, run.error)
    result = PodcastResult.objects.get(run=run)
    assert [line["text"] for line in result.transcript] == [
        line["text"] for line in run.checkpoints["transcript"]
    ]
    assert result.duration_seconds == pytest.approx(result.transcript[-1]["end"], abs=0.3)
    # Nothing was written or spoken twice; the spoken lines are gone once the episode holds them.
    assert calls == {"write_outline": 1, "write_transcript": 1, "speak_line": lines}
    assert not (Path(django_settings.MEDIA_ROOT) / "podcasts" / str(run.pk)).exists()


def counted(calls: Counter[str], name: str, function):
    def wrapper(*args, **kwargs):
        calls[name] += 1
        return function(*args, **kwargs)

    return wrapper
