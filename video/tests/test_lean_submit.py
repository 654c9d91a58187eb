"""The lean submit of a video (runs/submit.py with video/submit.py) answers as the DRF path does:
each body is sent to both paths and the answers and rows compared (runs/tests/lean.py)."""

from __future__ import annotations

import pytest

from events.models import RunEvent
from runs.tests import lean as helpers
from video.models import MAX_CHARACTERS, MAX_PROMPT_CHARS, MAX_SCENES, VideoRun
from video.views import VideoViewSet

from .conftest import CAST, SHORT_SCRIPT

pytestmark = pytest.mark.django_db

VIDEOS = "/api/videos/"
PROMPTED = {"title": "Dawn", "prompt": "A keeper lights the lamp.", "characters": CAST}


@pytest.fixture
def paths(monkeypatch):
    return helpers.spy_on_paths(monkeypatch)


def both_ways(monkeypatch, client, body, **extra) -> tuple[dict, dict]:
    return helpers.both_ways(monkeypatch, VideoViewSet, client, VIDEOS, body, **extra)


def stored(run: VideoRun) -> dict:
    row = helpers.stored_row(run)
    row["history"] = list(
        RunEvent.objects.filter(run_id=run.pk).values_list("kind", "from_status", "to_status")
    )
    return row


GOOD_BODIES = {
    "a prompt with the defaults": PROMPTED,
    "a script and everything given": {
        "title": "  Before the gulls ",
        "characters": [{"name": " Ada ", "description": "a keeper"}, *CAST[1:]],
        "script": SHORT_SCRIPT,
        "resolution": "640x360",
        "fps": 30,
        "priority": "low",
        "prompt": "",
    },
}


@pytest.mark.parametrize("body", GOOD_BODIES.values(), ids=GOOD_BODIES.keys())
def test_a_plain_submit_takes_the_lean_path_and_writes_what_drf_writes(
    monkeypatch, api, paths, body
):
    lean_answer, drf_answer = both_ways(monkeypatch, api, body)

    assert paths == ["lean"]
    assert lean_answer == drf_answer and lean_answer["status"] == 202
    made_lean, made_drf = VideoRun.objects.order_by("created_at")
    assert stored(made_lean) == stored(made_drf)
    assert stored(made_lean)["history"] == [("video.videorun", "pending", "queued")]


BAD_CHANGES = {
    "no title": {"title": None},
    "a title that is a number": {"title": 7},
    "a blank title": {"title": "  "},
    "a long prompt": {"prompt": "p" * (MAX_PROMPT_CHARS + 1)},
    "a prompt and a script": {"script": SHORT_SCRIPT},
    "neither": {"prompt": ""},
    "no cast": {"characters": []},
    "too big a cast": {"characters": [{"name": f"N{n}"} for n in range(MAX_CHARACTERS + 1)]},
    "a nameless character": {"characters": [{"description": "x"}]},
    "two of one name": {"characters": [{"name": "Ada"}, {"name": "Ada"}]},
    "an unknown voice": {"characters": [{"name": "Ada", "voice": "no-such-voice"}]},
    "a stranger speaks": {
        "prompt": "",
        "script": [{"speaker": "Zed", "text": "Hello."}],
    },
    "too many scenes": {
        "prompt": "",
        "script": [{"speaker": "Ada", "text": "x"}] * (MAX_SCENES + 1),
    },
    "an unknown resolution": {"resolution": "1x1"},
    "a frame rate as text": {"fps": "25"},
    "a fractional frame rate": {"fps": 25.0},
    "an unknown frame rate": {"fps": 60},
    "an unknown priority": {"priority": "now"},
}


@pytest.mark.parametrize("change", BAD_CHANGES.values(), ids=BAD_CHANGES.keys())
def test_what_the_lean_path_does_not_take_gets_the_drf_answer(monkeypatch, api, paths, change):
    body = {**PROMPTED, **change}
    body = {key: value for key, value in body.items() if value is not None}
    lean_answer, drf_answer = both_ways(monkeypatch, api, body)

    assert lean_answer == drf_answer
    assert paths == ["handed over"]
    assert VideoRun.objects.count() == (2 if lean_answer["status"] == 202 else 0)
