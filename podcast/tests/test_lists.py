"""Podcast lists at any length: a page costs the same queries for 2 runs as for 20, in the API
and the admin, and the other lists (sources, profiles) page by cursor too."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, Source, SpeakerProfile

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("short_profile", "contrast_speakers")]


def make_runs(owner, source: Source, count: int, *, with_record: bool = True) -> None:
    for _ in range(count):
        run = PodcastRun.objects.create(
            owner=owner,
            status="succeeded",
            episode_profile=EpisodeProfile.objects.get(slug="short"),
            speaker_profile=SpeakerProfile.objects.get(slug="contrast"),
            episode_name="Done",
            sources_snapshot=[{"id": source.pk, "title": source.title}] if with_record else [],
        )
        run.sources.add(source)
        PodcastResult.objects.create(run=run, audio=f"podcasts/{run.pk}.mp3",
                                     duration_seconds=1.0, processing_time_seconds=0.5)  # fmt: skip


def queries_of(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_a_page_of_20_runs_sends_as_many_queries_as_a_page_of_2(api, user, source):
    make_runs(user, source, 1)
    make_runs(user, source, 1, with_record=False)  # made before runs kept a record of sources
    few = queries_of(api, "/api/podcasts/")

    make_runs(user, source, 9)
    make_runs(user, source, 9, with_record=False)

    assert queries_of(api, "/api/podcasts/") == few
    page = api.get("/api/podcasts/").json()["results"]
    assert len(page) == 20
    assert all(run["source_ids"] == [source.pk] and run["result"] for run in page)
    assert {run["episode_profile"] for run in page} == {"short"}


def test_the_run_changelist_sends_as_many_queries_for_40_runs_as_for_2(
    admin_client, user, other_user, source, django_assert_max_num_queries
):
    make_runs(user, source, 2)
    few = queries_of(admin_client, "/admin/podcast/podcastrun/")
    make_runs(other_user, source, 38)

    with django_assert_max_num_queries(10):
        assert admin_client.get("/admin/podcast/podcastrun/").status_code == 200
    assert queries_of(admin_client, "/admin/podcast/podcastrun/") == few


def test_sources_and_profiles_page_by_cursor(api, user):
    for number in range(3):
        Source.objects.create(owner=user, title=f"Notes {number}", content="Words.")

    first = api.get("/api/sources/", {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    profiles = api.get("/api/episode-profiles/", {"page_size": 1}).json()

    titles = [row["title"] for row in first["results"] + second["results"]]
    assert titles == ["Notes 2", "Notes 1", "Notes 0"] and second["next"] is None
    assert len(profiles["results"]) == 1 and profiles["next"]
    following = api.get(profiles["next"]).json()["results"][0]["slug"]
    assert profiles["results"][0]["slug"] < following  # by slug
