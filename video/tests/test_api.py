"""Video API input rules and access, without a worker (nothing is dispatched: no commit)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from video.models import MAX_CHARACTERS, MAX_LINE_CHARS, MAX_PROMPT_CHARS, MAX_SCENES, VideoRun

from .conftest import CAST

pytestmark = pytest.mark.django_db


def post(api, body: dict, **headers):
    return api.post("/api/videos/", body, format="json", **headers)


def errors_of(api, body: dict) -> dict:
    answer = post(api, body)
    assert answer.status_code == 400, answer.json()
    assert not VideoRun.objects.exists()
    return answer.json()


def test_a_valid_prompt_is_accepted_with_the_defaults(api):
    answer = post(api, {"title": "Dawn", "prompt": "A keeper lights the lamp.", "characters": CAST})
    assert answer.status_code == 202
    run = VideoRun.objects.get(pk=answer.json()["id"])
    assert (run.resolution, run.fps, run.status) == ("1280x720", 25, "queued")
    assert answer["Location"].endswith(f"/api/videos/{run.pk}/")


def test_a_resolution_outside_the_list_is_refused(api, video_body):
    errors = errors_of(api, {**video_body, "resolution": "1000x1000"})
    assert "640x360" in errors["resolution"][0]


def test_too_many_characters_are_refused(api, video_body):
    cast = [{"name": f"Person {i}"} for i in range(MAX_CHARACTERS + 1)]
    errors = errors_of(api, {**video_body, "characters": cast})
    assert f"At most {MAX_CHARACTERS}" in errors["characters"][0]


def test_a_prompt_past_the_limit_is_refused(api, video_body):
    del video_body["script"]
    errors = errors_of(api, {**video_body, "prompt": "x" * (MAX_PROMPT_CHARS + 1)})
    assert "prompt" in errors


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("Ada: hello", "Give a list of scenes"),
        ([{"speaker": "Ada"}], "Scene 1: text is required"),
        ([{"speaker": "Ada", "text": 7}], "Scene 1: text must be text"),
        ([{"speaker": "Ada", "text": "x" * (MAX_LINE_CHARS + 1)}], "longer than"),
        ([{"speaker": "Ada", "text": "Hi."}] * (MAX_SCENES + 1), f"At most {MAX_SCENES}"),
        ([{"speaker": "Zed", "text": "Who am I?"}], "Speaker Zed is not among the characters"),
    ],
)
def test_a_malformed_script_is_refused_naming_the_problem(api, video_body, script, expected):
    errors = errors_of(api, {**video_body, "script": script})
    assert expected in errors["script"][0]


def test_a_prompt_and_a_script_together_or_neither_are_refused(api, video_body):
    assert "prompt" in errors_of(api, {**video_body, "prompt": "Also this."})
    del video_body["script"]
    assert "prompt" in errors_of(api, video_body)


def test_an_unknown_voice_is_refused(api, video_body):
    cast = [{"name": "Ada", "voice": "xx-nowhere"}, CAST[1]]
    errors = errors_of(api, {**video_body, "characters": cast})
    assert "xx-nowhere" in errors["characters"][0]


def test_the_same_idempotency_key_with_another_body_is_a_conflict(api, video_body):
    first = post(api, video_body, HTTP_IDEMPOTENCY_KEY="once")
    again = post(api, video_body, HTTP_IDEMPOTENCY_KEY="once")
    other = post(api, {**video_body, "title": "Else"}, HTTP_IDEMPOTENCY_KEY="once")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422
    assert VideoRun.objects.count() == 1


def test_runs_are_private_to_their_owner_and_need_a_login(api, user, other_user, video_body):
    run_id = post(api, video_body).json()["id"]
    stranger = APIClient()
    stranger.force_authenticate(other_user)
    assert stranger.get(f"/api/videos/{run_id}/").status_code == 404
    assert stranger.get(f"/api/videos/{run_id}/video/").status_code == 404
    assert stranger.post(f"/api/videos/{run_id}/cancel/").status_code == 404
    assert len(stranger.get("/api/videos/").json()["results"]) == 0
    assert APIClient().post("/api/videos/", video_body, format="json").status_code == 401
    assert api.get(f"/api/videos/{run_id}/video/").status_code == 404  # no result yet
    other_user.is_staff = True
    other_user.save()
    assert stranger.get(f"/api/videos/{run_id}/").json()["title"] == video_body["title"]


def test_the_list_filters_by_status(api, video_body):
    post(api, video_body)
    assert len(api.get("/api/videos/?status=queued").json()["results"]) == 1
    assert len(api.get("/api/videos/?status=succeeded").json()["results"]) == 0
    assert "status" in api.get("/api/videos/?status=bogus").json()
