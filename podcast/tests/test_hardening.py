"""Podcast API under hostile input (issue 11): bounded work per request, byte ranges by RFC 9110,
and runs that keep what they were made from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, Source, SpeakerProfile
from podcast.serializers import SOURCES_PER_RUN_MAX
from runs.files import byte_span

from .conftest import SHORT_SOURCE, episode_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("short_profile", "contrast_speakers")]


def make_sources(owner, count: int) -> list[Source]:
    return Source.objects.bulk_create(
        Source(owner=owner, title=f"Source {n}", content=SHORT_SOURCE) for n in range(count)
    )


def queries_to_submit(api, source_ids: list[int]) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        reply = api.post("/api/podcasts/", episode_request(source_ids), format="json")
    assert reply.status_code == 202, reply.json()
    return [query["sql"] for query in queries.captured_queries]


# Bounded work per request


def test_one_source_and_fifty_sources_cost_the_same_queries(api, user):
    sources = make_sources(user, SOURCES_PER_RUN_MAX)
    queries_to_submit(api, [sources[1].pk])  # the user's first submit also makes their cap lock row
    one = queries_to_submit(api, [sources[0].pk])
    fifty = queries_to_submit(api, [source.pk for source in sources])

    assert len(one) == len(fifty), (one, fifty)
    table = connection.ops.quote_name("podcast_source")
    looked_up = [sql for sql in fifty if sql.startswith("SELECT") and table in sql]
    assert len(looked_up) == 1, looked_up  # all fifty ids in one query (the lean path's join)
    counts = sorted(run.sources.count() for run in PodcastRun.objects.all())
    assert counts == [1, 1, SOURCES_PER_RUN_MAX]


def test_fifty_thousand_ids_are_refused_by_the_cap_before_any_lookup(api, user):
    ids = list(range(1, 50_001))
    body = json.dumps(episode_request(ids))
    assert len(body) > 200_000
    with CaptureQueriesContext(connection) as queries:
        reply = api.generic("POST", "/api/podcasts/", body, content_type="application/json")

    assert reply.status_code == 400
    assert reply.json()["source_ids"] == ["At most 50 sources per episode, not 50000."]
    assert not [q for q in queries.captured_queries if "podcast_source" in q["sql"]]
    assert len(queries.captured_queries) <= 5  # the token, the profiles: nothing per id


def test_fifty_one_sources_are_refused_and_duplicates_count_once(api, user):
    sources = make_sources(user, SOURCES_PER_RUN_MAX + 1)
    ids = [source.pk for source in sources]
    reply = api.post("/api/podcasts/", episode_request(ids), format="json")
    assert "At most 50 sources" in reply.json()["source_ids"][0]

    twice = api.post("/api/podcasts/", episode_request([ids[0], ids[1], ids[0]]), format="json")
    assert twice.status_code == 202
    run = PodcastRun.objects.get(pk=twice.json()["id"])
    assert run.sources.count() == 2
    assert [s["id"] for s in run.sources_snapshot] == [ids[0], ids[1]]


# Runs keep what they were made from


def test_a_finished_run_keeps_its_source_ids_and_titles_after_a_source_is_deleted(api, user):
    first, second = make_sources(user, 2)
    run_id = api.post(
        "/api/podcasts/", episode_request([first.pk, second.pk]), format="json"
    ).json()["id"]
    PodcastRun.objects.filter(pk=run_id).update(status="succeeded")

    assert api.delete(f"/api/sources/{first.pk}/").status_code == 204
    run = api.get(f"/api/podcasts/{run_id}/").json()

    assert run["source_ids"] == [first.pk, second.pk]
    assert run["sources"] == [
        {"id": first.pk, "title": "Source 0"},
        {"id": second.pk, "title": "Source 1"},
    ]
    listed = api.get("/api/podcasts/").json()["results"][0]
    assert listed["source_ids"] == [first.pk, second.pk]


def test_a_run_made_before_the_snapshot_shows_its_remaining_sources(api, user, source):
    run = PodcastRun.objects.create(
        owner=user,
        episode_profile=EpisodeProfile.objects.get(slug="short"),
        speaker_profile=SpeakerProfile.objects.get(slug="contrast"),
        episode_name="Old",
    )
    run.sources.set([source])
    assert api.get(f"/api/podcasts/{run.pk}/").json()["source_ids"] == [source.pk]


# Byte ranges (RFC 9110)


def finished_run(owner) -> PodcastRun:
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
    path.write_bytes(b"ID3 fake audio bytes")  # 20 bytes
    PodcastResult.objects.create(
        run=run, audio=name, duration_seconds=1.0, processing_time_seconds=0.5
    )
    return run


THOUSANDS = "9" * 5_000


@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        ("bytes=-0", 416, "bytes */20", b""),  # a suffix of no bytes cannot be satisfied
        (f"bytes={THOUSANDS}-", 416, "bytes */20", b""),  # starts past the end
        (f"bytes={THOUSANDS}-{THOUSANDS}", 416, "bytes */20", b""),
        (f"bytes=0-{THOUSANDS}", 206, "bytes 0-19/20", b"ID3 fake audio bytes"),
        (f"bytes=-{THOUSANDS}", 206, "bytes 0-19/20", b"ID3 fake audio bytes"),
        ("bytes=-25", 206, "bytes 0-19/20", b"ID3 fake audio bytes"),
        ("bytes=19-19", 206, "bytes 19-19/20", b"s"),
        ("bytes=20-", 416, "bytes */20", b""),
        ("bytes=5-2", 416, "bytes */20", b""),
        ("bytes=-", 416, "bytes */20", b""),
        ("bytes=a-b", 416, "bytes */20", b""),
        ("BYTES=0-2", 206, "bytes 0-2/20", b"ID3"),
        ("bytes=0-1, 4-5", 200, None, b"ID3 fake audio bytes"),  # several ranges: the whole file
    ],
)
def test_byte_ranges_follow_rfc_9110(api, user, header, status, content_range, body):
    run = finished_run(user)
    reply = api.get(f"/api/podcasts/{run.pk}/audio/", HTTP_RANGE=header)

    assert reply.status_code == status
    assert reply.get("Content-Range") == content_range
    content = b"".join(reply.streaming_content) if reply.streaming else reply.content
    assert content == body
    if status != 416:
        assert reply["Content-Type"] == "audio/mpeg"


def test_byte_span_never_raises_on_huge_or_odd_headers():
    for header in (f"bytes={'1' * 100_000}-", "bytes=" + "-" * 1000, "bytes=0-0" + ",0-0" * 5000):
        assert byte_span(header, 20) in (None, "whole")
    assert byte_span("bytes=0-0", 0) is None  # an empty file has no bytes to send


def test_a_long_speaker_list_is_refused_before_any_speaker_is_checked(staff_api):
    speaker = {"name": "Ann", "voice": "klingon", "pitch": 500}
    body = {"slug": "crowd", "name": "Crowd", "speakers": [speaker] * 10_000}
    reply = staff_api.post("/api/speaker-profiles/", body, format="json")
    assert reply.status_code == 400
    assert reply.json() == {"speakers": ["A profile needs 2 to 6 speakers, not 10000."]}
