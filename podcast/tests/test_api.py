"""The podcast API's answers to bad input, strangers and staff (no worker: nothing is sent)."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from podcast.models import (
    SOURCE_MAX_CHARS,
    SOURCE_MAX_UPLOAD_BYTES,
    EpisodeProfile,
    PodcastResult,
    PodcastRun,
    Source,
    SpeakerProfile,
)

from .conftest import SHORT_SOURCE, episode_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("short_profile", "contrast_speakers")]


def errors_of(reply, status: int = 400) -> dict:
    assert reply.status_code == status, (reply.status_code, reply.content[:300])
    return reply.json()


def create_run(api, source_ids, **overrides):
    return api.post("/api/podcasts/", episode_request(source_ids, **overrides), format="json")


def test_the_seeded_profiles_exist_after_the_data_migration(api):
    EpisodeProfile.objects.all().delete()
    SpeakerProfile.objects.all().delete()
    import_module("podcast.migrations.0002_seed_profiles").seed(apps, None)

    episodes = [p["slug"] for p in api.get("/api/episode-profiles/").json()["results"]]
    speakers = api.get("/api/speaker-profiles/").json()["results"]
    assert episodes == ["default", "mandarin", "two_hosts"]
    assert [p["slug"] for p in speakers] == ["default", "mandarin", "two_hosts"]
    for profile in speakers:
        voices = [(s["voice"], s["pitch"]) for s in profile["speakers"]]
        assert len(voices) >= 2 and len(set(voices)) == len(voices)


# Podcasts: a message per field for every kind of bad input


def test_a_valid_request_is_accepted_and_stored_queued(api, source):
    reply = create_run(api, [source.pk])
    assert reply.status_code == 202, reply.json()
    run = PodcastRun.objects.get(pk=reply.json()["id"])
    # Inserted queued with its task id; the test transaction never commits, so nothing is sent.
    assert run.status == "queued" and run.task_id and run.queued_at
    assert list(run.sources.all()) == [source]
    assert (run.episode_profile.slug, run.speaker_profile.slug) == ("short", "contrast")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("episode_profile", None, "This field is required."),
        ("episode_profile", "nope", "Object with slug=nope does not exist."),
        ("speaker_profile", None, "This field is required."),
        ("speaker_profile", "nope", "Object with slug=nope does not exist."),
        ("episode_name", None, "This field is required."),
        ("episode_name", 42, "Not a valid string."),
        ("episode_name", "", "This field may not be blank."),
        ("episode_name", "x" * 201, "Ensure this field has no more than 200 characters."),
        ("source_ids", None, "This field is required."),
        ("source_ids", [], "This list may not be empty."),
        ("source_ids", "1", 'Expected a list of items but got type "str".'),
        ("source_ids", ["abc"], "Incorrect type. Expected pk value, received str."),
        ("source_ids", [987654321], 'Invalid pk "987654321" - object does not exist.'),
        ("briefing_suffix", ["a"], "Not a valid string."),
        ("briefing_suffix", "x" * 2001, "Ensure this field has no more than 2000 characters."),
        ("priority", "urgent", '"urgent" is not a valid choice.'),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_field(api, source, field, value, message):
    body = episode_request([source.pk])
    if value is None:
        del body[field]
    else:
        body[field] = value
    errors = errors_of(api.post("/api/podcasts/", body, format="json"))
    assert errors == {field: [message]}
    assert not PodcastRun.objects.exists()


def test_another_users_source_reads_as_missing(api, other_user, source):
    foreign = Source.objects.create(owner=other_user, title="Theirs", content=SHORT_SOURCE)
    errors = errors_of(create_run(api, [source.pk, foreign.pk]))
    assert errors == {"source_ids": [f'Invalid pk "{foreign.pk}" - object does not exist.']}


def test_several_bad_fields_are_all_reported_at_once(api):
    errors = errors_of(api.post("/api/podcasts/", {"source_ids": []}, format="json"))
    assert set(errors) == {"episode_profile", "speaker_profile", "episode_name", "source_ids"}


def test_the_same_idempotency_key_gives_the_first_answer_and_one_run(api, source):
    headers = {"HTTP_IDEMPOTENCY_KEY": "episode-1"}
    body = episode_request([source.pk])
    first = api.post("/api/podcasts/", body, format="json", **headers)
    again = api.post("/api/podcasts/", body, format="json", **headers)
    other = api.post("/api/podcasts/", {**body, "episode_name": "Other"}, format="json", **headers)

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422
    assert PodcastRun.objects.count() == 1


def test_list_filters_by_status_and_refuses_an_unknown_one(api, source):
    create_run(api, [source.pk])
    assert len(api.get("/api/podcasts/?status=queued").json()["results"]) == 1
    assert api.get("/api/podcasts/?status=succeeded").json()["results"] == []
    assert "status" in errors_of(api.get("/api/podcasts/?status=bogus"))


# Sources


def test_a_source_from_json_is_created(api, user):
    reply = api.post("/api/sources/", {"title": "Bees", "content": SHORT_SOURCE}, format="json")
    assert reply.status_code == 201, reply.json()
    source = Source.objects.get(pk=reply.json()["id"])
    assert (source.owner, source.content) == (user, SHORT_SOURCE)


def test_a_markdown_upload_becomes_a_source_named_after_the_file(api):
    upload = SimpleUploadedFile("bee-notes.md", b"# Bees\n\nThey *dance*.", "text/markdown")
    reply = api.post("/api/sources/", {"file": upload}, format="multipart")
    assert reply.status_code == 201, reply.json()
    assert reply.json()["title"] == "bee-notes"
    assert Source.objects.get(pk=reply.json()["id"]).content == "# Bees\n\nThey *dance*."


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": "Empty", "content": "   "}, "content", "The source has no text."),
        ({"title": "No text"}, "content", "Send content or upload a file."),
        ({"content": SHORT_SOURCE}, "title", "This field is required."),
        ({"title": 7, "content": SHORT_SOURCE}, "title", "Not a valid string."),
        ({"title": "T", "content": ["a"]}, "content", "Not a valid string."),
        (
            {"title": "Long", "content": "x" * (SOURCE_MAX_CHARS + 1)},
            "content",
            f"The text has {SOURCE_MAX_CHARS + 1:,} characters; the limit is {SOURCE_MAX_CHARS:,}.",
        ),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(api, body, field, message):
    assert errors_of(api.post("/api/sources/", body, format="json")) == {field: [message]}


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.pdf", b"%PDF-1.4", "Upload a plain-text (.txt) or Markdown (.md) file."),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "The file is not UTF-8 text."),
        ("big.txt", b"a" * (SOURCE_MAX_UPLOAD_BYTES + 1), "The file is larger than 2 MB."),
        ("blank.txt", b"\n\n", "The source has no text."),
    ],
)
def test_a_bad_upload_is_refused_naming_the_file_field(api, name, data, message):
    reply = api.post("/api/sources/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert errors_of(reply) == {"file": [message]}


def test_users_see_only_their_own_sources(api, other_api, source):
    assert [s["id"] for s in api.get("/api/sources/").json()["results"]] == [source.pk]
    assert other_api.get("/api/sources/").json()["results"] == []
    assert other_api.get(f"/api/sources/{source.pk}/").status_code == 404
    assert other_api.delete(f"/api/sources/{source.pk}/").status_code == 404
    assert api.get(f"/api/sources/{source.pk}/").json()["content"] == SHORT_SOURCE


# Profiles


def test_only_staff_change_profiles(api, staff_api):
    profile = {"slug": "solo", "name": "Solo", "segments": 2, "target_words": 100}
    assert api.post("/api/episode-profiles/", profile, format="json").status_code == 403
    assert (
        api.patch("/api/episode-profiles/short/", {"segments": 5}, format="json").status_code == 403
    )
    assert staff_api.post("/api/episode-profiles/", profile, format="json").status_code == 201
    assert EpisodeProfile.objects.filter(slug="solo").exists()


def test_a_profile_in_use_cannot_be_deleted(api, staff_api, source):
    create_run(api, [source.pk])
    for url in ("/api/episode-profiles/short/", "/api/speaker-profiles/contrast/"):
        reply = staff_api.delete(url)
        assert reply.status_code == 409, url
        assert reply.json() == {"slug": ["Runs use this profile; it cannot be deleted."]}
    assert staff_api.delete("/api/episode-profiles/default/").status_code == 204


def speaker_profile(*speakers) -> dict:
    return {"slug": "duo", "name": "Duo", "speakers": list(speakers)}


ANN = {"name": "Ann", "role": "host", "voice": "en-gb", "pitch": 60, "rate": 170}
VOICE_ERROR = "unknown voice 'klingon'; try one of en, en-us, en-gb, cmn, de, fr"
BOB = {"name": "Bob", "role": "guest", "voice": "en-us", "pitch": 30, "rate": 160}


def test_staff_create_a_speaker_profile_with_its_speakers_in_order(staff_api):
    reply = staff_api.post("/api/speaker-profiles/", speaker_profile(ANN, BOB), format="json")
    assert reply.status_code == 201, reply.json()
    profile = SpeakerProfile.objects.get(slug="duo")
    assert [s.name for s in profile.speakers.all()] == ["Ann", "Bob"]


@pytest.mark.parametrize(
    ("speakers", "errors"),
    [
        ([ANN], {"speakers": ["A profile needs 2 to 6 speakers, not 1."]}),
        ([ANN, {**BOB, "name": "ann"}], {"speakers": ["Each speaker needs a different name."]}),
        (
            [ANN, {**BOB, "pitch": 120}],
            {"speakers": {"1": {"pitch": ["Ensure this value is less than or equal to 99."]}}},
        ),
        (
            [ANN, {**BOB, "voice": "klingon"}],
            {"speakers": {"1": {"voice": [VOICE_ERROR]}}},
        ),
    ],
)
def test_a_bad_speaker_profile_is_refused_naming_the_speaker_field(staff_api, speakers, errors):
    reply = staff_api.post("/api/speaker-profiles/", speaker_profile(*speakers), format="json")
    assert errors_of(reply) == errors


# Who may see what


def finished_run(owner) -> PodcastRun:
    """A run with a result and an audio file on disk, as the worker leaves it."""
    run = PodcastRun.objects.create(
        owner=owner,
        status="succeeded",
        episode_profile=EpisodeProfile.objects.get(slug="short"),
        speaker_profile=SpeakerProfile.objects.get(slug="contrast"),
        episode_name="Done",
    )
    name = f"podcasts/{run.pk}.mp3"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ID3 fake audio bytes")
    PodcastResult.objects.create(run=run, audio=name, duration_seconds=1.0,
                                 processing_time_seconds=0.5)  # fmt: skip
    return run


def test_unauthenticated_requests_get_401(user):
    run = finished_run(user)
    anonymous = APIClient()
    for url in (
        "/api/sources/",
        "/api/episode-profiles/",
        "/api/speaker-profiles/",
        "/api/podcasts/",
        f"/api/podcasts/{run.pk}/",
        f"/api/podcasts/{run.pk}/audio/",
    ):
        assert anonymous.get(url).status_code == 401, url
    assert anonymous.post("/api/podcasts/", {}, format="json").status_code == 401
    assert anonymous.post(f"/api/podcasts/{run.pk}/cancel/").status_code == 401


def test_a_run_and_its_audio_are_the_owners_and_staffs_only(api, other_api, staff_api, user):
    run = finished_run(user)
    audio_url = api.get(f"/api/podcasts/{run.pk}/").json()["result"]["audio_url"]
    assert audio_url.endswith(f"/api/podcasts/{run.pk}/audio/")

    for client in (api, staff_api):
        reply = client.get(audio_url)
        assert reply.status_code == 200
        assert b"".join(reply.streaming_content) == b"ID3 fake audio bytes"

    for path in ("", "audio/"):
        assert other_api.get(f"/api/podcasts/{run.pk}/{path}").status_code == 404
    for action in ("cancel", "retry"):
        assert other_api.post(f"/api/podcasts/{run.pk}/{action}/").status_code == 404
    assert other_api.get("/api/podcasts/").json()["results"] == []
    assert len(staff_api.get("/api/podcasts/").json()["results"]) == 1


@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        ("bytes=0-2", 206, "bytes 0-2/20", b"ID3"),
        ("bytes=15-", 206, "bytes 15-19/20", b"bytes"),
        ("bytes=-5", 206, "bytes 15-19/20", b"bytes"),
        ("bytes=4-400", 206, "bytes 4-19/20", b"fake audio bytes"),
        ("bytes=30-40", 416, "bytes */20", b""),
    ],
)
def test_audio_answers_byte_ranges_for_players_that_seek(
    api, user, header, status, content_range, body
):
    run = finished_run(user)
    reply = api.get(f"/api/podcasts/{run.pk}/audio/", HTTP_RANGE=header)
    assert reply.status_code == status
    assert reply["Content-Range"] == content_range
    content = b"".join(reply.streaming_content) if reply.streaming else reply.content
    assert content == body


def test_a_range_in_an_unknown_unit_is_ignored_and_the_whole_file_sent(api, user):
    run = finished_run(user)
    reply = api.get(f"/api/podcasts/{run.pk}/audio/", HTTP_RANGE="pages=1-2")
    assert reply.status_code == 200 and "Content-Range" not in reply
    assert len(b"".join(reply.streaming_content)) == 20


def test_another_users_range_request_is_404_too(other_api, user):
    run = finished_run(user)
    assert (
        other_api.get(f"/api/podcasts/{run.pk}/audio/", HTTP_RANGE="bytes=0-2").status_code == 404
    )


def test_audio_of_an_unfinished_run_is_404(api, source):
    run_id = create_run(api, [source.pk]).json()["id"]
    assert api.get(f"/api/podcasts/{run_id}/").json()["result"] is None
    assert api.get(f"/api/podcasts/{run_id}/audio/").status_code == 404


def test_media_is_not_served_from_a_public_path(api, user):
    run = finished_run(user)
    assert APIClient().get(f"/media/podcasts/{run.pk}.mp3").status_code == 404
