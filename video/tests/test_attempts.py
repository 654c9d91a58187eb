"""Attempts of one video run: engine calls are checkpointed, the result comes with success.

The parts run here in-process (`task.apply`), with the local engines, so the test can stand
between two steps: another worker takes the run over just before compose saves the result.
"""

from __future__ import annotations

from collections import Counter

import pytest

from engines.media import probe
from runs import artifacts, lifecycle
from runs.models import RunStatus
from video import steps, tasks
from video.models import CharacterImage, VideoResult, VideoRun

from .conftest import CAST, SHORT_SCRIPT

pytestmark = pytest.mark.django_db(transaction=True)

PARTS = (tasks.write_script, tasks.draw_characters, tasks.speak_narration, tasks.compose_video)


def test_a_superseded_attempt_keeps_no_result_and_the_next_one_redoes_no_engine_call(
    user, settings, monkeypatch
):
    # Every heartbeat counts as stale: a second claim takes the run over at once, as the
    # timeout check's re-dispatch does after a worker stopped answering.
    settings.RUN_STALE_AFTER_SECONDS = -1
    run = VideoRun.objects.create(
        owner=user, title="Twice", characters=CAST, script=SHORT_SCRIPT, resolution="640x360"
    )
    calls: Counter[str] = Counter()
    for name in ("cast_scenes", "draw_portrait", "draw_frame", "speak_line", "join_narration"):
        monkeypatch.setattr(steps, name, counted(calls, name, getattr(steps, name)))
    taken: list[VideoRun | None] = []
    real_probe = steps.probe

    def probe_then_lose_the_run(path):
        if not taken:  # compose has rendered the MP4; another worker takes the run over
            taken.append(lifecycle.claim(VideoRun, str(run.pk)))
        return real_probe(path)

    monkeypatch.setattr(steps, "probe", probe_then_lose_the_run)
    first = lifecycle.claim(VideoRun, str(run.pk))
    assert first is not None
    for part in PARTS:
        part.apply(args=(str(run.pk), first.attempt))

    run.refresh_from_db()
    assert taken[0] is not None and taken[0].attempt == 2
    assert (run.status, run.attempt) == (RunStatus.RUNNING, 2)
    assert not VideoResult.objects.filter(run=run).exists()  # attempt 1 saved nothing
    assert not CharacterImage.objects.filter(result__run=run).exists()
    scenes, cast = len(SHORT_SCRIPT), len(CAST)
    expected = {"cast_scenes": 1, "draw_portrait": cast, "draw_frame": scenes,
                "speak_line": scenes, "join_narration": 1}  # fmt: skip
    assert calls == expected
    assert set(run.checkpoints) == {
        "script",
        "narration",
        *(f"portrait {n}" for n in range(1, cast + 1)),
        *(f"frame {n}" for n in range(1, scenes + 1)),
        *(f"speech {n}" for n in range(1, scenes + 1)),
    }
    spoken = [run.checkpoints[f"speech {n}"] for n in range(1, scenes + 1)]
    assert all(artifacts.exists(line) for line in spoken)  # kept for a later attempt

    for part in PARTS:  # attempt 2's canvas
        part.apply(args=(str(run.pk), 2))

    run.refresh_from_db()
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 2), (run.message, run.error)
    assert calls == expected  # nothing written, drawn or spoken twice
    result = VideoResult.objects.get(run=run)
    assert [image.name for image in result.images.all()] == [c["name"] for c in CAST]
    assert [s["speaker"] for s in result.script] == [s["speaker"] for s in SHORT_SCRIPT]
    assert all(s["end"] > s["start"] for s in result.script)
    video = probe(result.video.path)
    assert video.first("video") is not None and video.first("audio") is not None
    assert abs(video.duration_seconds - probe(result.audio.path).duration_seconds) <= 0.5
    assert not any(artifacts.exists(line) for line in spoken)  # the narration holds them now


def counted(calls: Counter[str], name: str, function):
    def wrapper(*args, **kwargs):
        calls[name] += 1
        return function(*args, **kwargs)

    return wrapper
