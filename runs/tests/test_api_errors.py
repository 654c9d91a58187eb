"""Every answer under /api/ is JSON, and bad input is a 400 naming the field or the limit, never a
500 (issue 11: "27 server errors from bad input", "Leaks and rough edges")."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from podcast.models import PodcastRun, Source
from runs.api_errors import SafeJSONRenderer
from runs.tests.sleeper.api import SleepRunViewSet
from video.models import VideoRun

pytestmark = pytest.mark.django_db

VIDEO = {"title": "Dawn", "prompt": "A keeper lights the lamp.", "characters": [{"name": "Ada"}]}


def json_error(reply, status: int) -> dict:
    assert reply.status_code == status, (reply.status_code, reply.content[:300])
    assert reply["Content-Type"].startswith("application/json"), reply["Content-Type"]
    return reply.json()


def post_raw(client, path: str, body: str | bytes, content_type: str = "application/json"):
    return client.generic("POST", path, body, content_type=content_type)


# Every error is JSON


def test_an_unknown_path_under_api_is_a_json_404(api):
    assert json_error(api.get("/api/no-such-thing/"), 404) == {"detail": "Not found."}
    assert json_error(APIClient().get("/api/podcasts/x/y/z/"), 404)["detail"]


def test_a_malformed_run_id_is_a_json_404(api):
    for path in ("/api/podcasts/not-a-uuid/", "/api/videos/12/", "/api/podcasts/" + "-" * 36 + "/"):
        assert json_error(api.get(path), 404)["detail"], path


def test_a_path_outside_api_keeps_its_html_page(api):
    reply = api.get("/no-such-page/")
    assert reply.status_code == 404
    assert not reply["Content-Type"].startswith("application/json")


def test_a_wrong_method_is_a_json_405_with_allow(api):
    body = json_error(api.delete("/api/podcasts/"), 405)
    assert "DELETE" in body["detail"]
    assert "POST" in api.delete("/api/podcasts/")["Allow"]


def test_a_body_over_the_upload_limit_is_a_json_413_naming_it(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    reply = api.post("/api/sources/", {"title": "Big", "content": "x" * 2000}, format="json")
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in json_error(reply, 413)["detail"]
    big = SimpleUploadedFile("big.txt", b"y" * 2000)
    upload = api.post("/api/sources/", {"file": big}, format="multipart")
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in json_error(upload, 413)["detail"]
    assert not Source.objects.exists()


def test_an_unsupported_media_type_is_a_json_415(api):
    reply = post_raw(api, "/api/sources/", "title=x", content_type="text/plain")
    assert "text/plain" in json_error(reply, 415)["detail"]


def test_no_login_is_a_json_401_and_no_permission_a_json_403(api):
    assert json_error(APIClient().get("/api/podcasts/"), 401)["detail"]
    reply = api.post("/api/episode-profiles/", {"slug": "x", "name": "X"}, format="json")
    assert json_error(reply, 403)["detail"]


def test_a_server_error_under_api_is_a_json_500(api, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path exploded")

    monkeypatch.setattr(SleepRunViewSet, "list", broken)
    api.raise_request_exception = False
    body = json_error(api.get("/api/test/sleep-runs/"), 500)
    assert "secret" not in json.dumps(body)


def test_options_on_the_docs_page_answers_instead_of_a_500(api):
    reply = APIClient().options("/api/docs/")
    assert reply.status_code == 200
    assert reply["Content-Type"].startswith("application/json")
    assert "GET" in reply["Allow"]
    assert APIClient().options("/api/schema/").status_code < 500


# JSON depth


@pytest.mark.parametrize(
    "path", ["/api/podcasts/", "/api/videos/", "/api/sources/", "/api/test/sleep-runs/"]
)
def test_json_nested_past_the_limit_is_a_400_naming_the_limit(api, path):
    for depth in (33, 1_000, 100_000):
        reply = post_raw(api, path, "[" * depth + "]" * depth)
        assert "32 levels" in json_error(reply, 400)["detail"]
    inside = '{"title": "t", "characters": ' + "[" * 5_000 + "]" * 5_000 + "}"
    assert "32 levels" in json_error(post_raw(api, path, inside), 400)["detail"]


def test_the_anonymous_token_endpoint_refuses_deep_json_too():
    reply = post_raw(APIClient(), "/api/auth/token/", '{"username": ' + "[" * 5_000 + "]" * 5_000)
    assert "32 levels" in json_error(reply, 400)["detail"]


def test_brackets_inside_strings_do_not_count_as_depth(api):
    reply = api.post(
        "/api/sources/", {"title": "[[[[", "content": "[" * 10_000 + "{" * 10_000}, format="json"
    )
    assert reply.status_code == 201, reply.json()


# NUL, lone surrogates, numbers out of range


def test_a_lone_surrogate_in_a_videos_characters_or_script_is_a_400_naming_the_field(api):
    body = json.dumps({**VIDEO, "characters": [{"name": "Ada", "description": "x\ud800y"}]})
    errors = json_error(post_raw(api, "/api/videos/", body), 400)
    assert list(errors) == ["characters"]
    assert "characters[0].description" in errors["characters"][0]
    script = [{"speaker": "Ada", "text": "\udfff"}]
    body = json.dumps({**VIDEO, "prompt": "", "script": script})
    assert "script[0].text" in json_error(post_raw(api, "/api/videos/", body), 400)["script"][0]
    assert not VideoRun.objects.exists()
    assert api.get("/api/videos/").status_code == 200  # the owner's list still answers


def test_nul_characters_in_a_text_field_are_a_400_naming_the_field(api):
    reply = api.post("/api/sources/", {"title": "a\x00b", "content": "text"}, format="json")
    assert json_error(reply, 400) == {"title": ["Text may not contain NUL characters."]}
    form = api.post("/api/sources/", {"title": "ok", "content": "te\x00xt"}, format="multipart")
    assert list(json_error(form, 400)) == ["content"]
    binary = SimpleUploadedFile("a.txt", b"bin\x00ary")
    upload = api.post("/api/sources/", {"file": binary}, format="multipart")
    assert list(json_error(upload, 400)) == ["file"]
    assert not Source.objects.exists()


def test_a_key_with_a_surrogate_is_refused_too(api):
    body = '{"title": "t", "content": "c", "\\ud800": 1}'
    assert json_error(post_raw(api, "/api/sources/", body), 400)


def test_a_number_out_of_range_in_an_id_list_is_a_400_naming_the_field(api):
    body = '{"episode_profile": "default", "speaker_profile": "default", "episode_name": "E", '
    for ids in ("[1e400]", "[-1e400]", "[1, 2, 1e999]"):
        errors = json_error(post_raw(api, "/api/podcasts/", body + f'"source_ids": {ids}}}'), 400)
        assert "source_ids" in errors and "out of range" in errors["source_ids"][0]
    digits = "9" * 5_000
    reply = post_raw(api, "/api/podcasts/", body + f'"source_ids": [{digits}]}}')
    assert "too many digits" in json_error(reply, 400)["detail"]
    huge = api.post(
        "/api/podcasts/",
        {"episode_profile": "default", "source_ids": [2**70, 0, -3]},
        format="json",
    )
    assert "does not exist" in json_error(huge, 400)["source_ids"][0]
    for constant in ("NaN", "Infinity", "-Infinity"):
        reply = post_raw(api, "/api/podcasts/", body + f'"source_ids": [{constant}]}}')
        assert constant in json_error(reply, 400)["detail"]
    assert not PodcastRun.objects.exists()


# Date filters


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01",  # before MySQL's DATETIME, and past the minimum once moved to UTC
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59-14:00",  # past the maximum once moved to UTC
        "0999-12-31",
        "2026-02-30",  # impossible
        "2026-13-01",
        "2026-11-23T25:00:00",
        "2026-11-23T10:00:00+99:00",
        "9" * 5_000,
        "yesterday",
    ],
)
@pytest.mark.parametrize("param", ["created_after", "created_before"])
def test_an_impossible_or_out_of_range_date_filter_is_a_400_naming_it(api, param, value):
    for path in ("/api/podcasts/", "/api/videos/"):
        assert list(json_error(api.get(path, {param: value}), 400)) == [param]


def test_dates_in_range_filter(api, user):
    VideoRun.objects.create(owner=user, title="t", characters=[{"name": "A"}])
    assert len(api.get("/api/videos/", {"created_after": "1000-01-02"}).json()["results"]) == 1
    assert len(api.get("/api/videos/", {"created_before": "9999-12-30"}).json()["results"]) == 1
    late = api.get("/api/videos/", {"created_after": "9999-12-30T00:00:00Z"})
    assert late.json()["results"] == []
    reply = api.get("/api/videos/", {"status": "pending,nope," + "x" * 500})
    assert "nope" in json_error(reply, 400)["status"][0]


def test_a_run_id_that_matches_the_pattern_but_is_no_uuid_is_a_404(api):
    assert json_error(api.get(f"/api/videos/{'0' * 36}/"), 404)
    assert json_error(api.post(f"/api/videos/{uuid.uuid4()}/cancel/"), 404)


def test_text_stored_with_a_lone_surrogate_still_renders():
    """SQLite kept such text before the parsers refused it: the lists must still answer."""
    body = SafeJSONRenderer().render({"message": "a\ud800b", "title": "蜜蜂"})
    assert json.loads(body) == {"message": "a\ud800b", "title": "蜜蜂"}
    assert SafeJSONRenderer().render({"title": "蜜蜂"}) == '{"title":"蜜蜂"}'.encode()
