"""Cursor pages of the run lists: newest first, stable while runs are added, own runs only."""

from __future__ import annotations

from base64 import b64encode
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import RunStatus
from runs.pagination import MAX_PAGE_SIZE
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db

RUNS = "/api/test/sleep-runs/"


def make_runs(owner, count: int, *, minutes_ago: int = 0, **fields) -> list[SleepRun]:
    """`count` runs, one a minute apart, the last `minutes_ago` minutes ago; oldest first."""
    now = timezone.now() - timedelta(minutes=minutes_ago)
    runs = []
    for age in range(count, 0, -1):
        run = SleepRun.objects.create(owner=owner, **fields)
        SleepRun.objects.filter(pk=run.pk).update(created_at=now - timedelta(minutes=age))
        runs.append(run)
    return runs


def ids(page) -> list[str]:
    return [row["id"] for row in page["results"]]


def walk(api, url: str, params: dict | None = None) -> list[str]:
    """Every id on every page, following the next links."""
    page = api.get(url, params).json()
    seen = ids(page)
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += ids(page)
    return seen


def test_a_page_is_next_previous_and_results_with_no_count(api, user):
    make_runs(user, 3)

    page = api.get(RUNS, {"page_size": 2}).json()

    assert set(page) == {"next", "previous", "results"}
    assert page["previous"] is None and "cursor=" in page["next"]
    assert len(page["results"]) == 2


def test_pages_go_newest_first_and_stay_put_when_runs_are_added(api, user):
    oldest_first = [str(run.pk) for run in make_runs(user, 5, minutes_ago=10)]
    first = api.get(RUNS, {"page_size": 2}).json()
    newer = [str(run.pk) for run in make_runs(user, 3)]  # made while the client reads

    second = api.get(first["next"]).json()
    third = api.get(second["next"]).json()
    back = api.get(second["previous"]).json()

    assert ids(first) == oldest_first[:2:-1]
    assert ids(second) == oldest_first[2:0:-1]
    assert ids(third) == oldest_first[:1] and third["next"] is None
    assert ids(back) == ids(first)  # the newer runs appear only from the top of the list
    assert ids(api.get(RUNS, {"page_size": 3}).json()) == newer[::-1]


def test_runs_made_at_the_same_moment_are_neither_skipped_nor_repeated(api, user):
    for _ in range(7):
        SleepRun.objects.create(owner=user)
    SleepRun.objects.update(created_at=timezone.now())

    seen = walk(api, RUNS, {"page_size": 2})

    # Ties go by id, in the database's order of ids (MariaDB's UUID type has its own).
    in_order = SleepRun.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    assert seen == [str(pk) for pk in in_order]


def test_a_user_pages_through_only_their_own_runs(api, user, other_user):
    own = make_runs(user, 4)
    make_runs(other_user, 4)

    assert sorted(walk(api, RUNS, {"page_size": 3})) == sorted(str(run.pk) for run in own)


def test_the_filters_hold_on_every_page(api, user):
    make_runs(user, 5, status=RunStatus.FAILED, minutes_ago=60 * 24 * 3)
    recent_failed = make_runs(user, 3, status=RunStatus.FAILED)
    make_runs(user, 4, status=RunStatus.SUCCEEDED)
    since = (timezone.now() - timedelta(days=1)).isoformat()

    seen = walk(api, RUNS, {"page_size": 2, "status": "failed", "created_after": since})

    assert seen == [str(run.pk) for run in reversed(recent_failed)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": b64encode(b"p=yesterday").decode()}, "cursor"),  # no moment
        ({"cursor": b64encode(b"o=-3").decode()}, "cursor"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": str(MAX_PAGE_SIZE + 1)}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
    ],
)
def test_a_bad_cursor_or_page_size_answers_400_naming_it(api, user, params, field):
    make_runs(user, 1)

    answer = api.get(RUNS, params)

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/json"
    assert list(answer.json()) == [field]


def test_page_size_goes_up_to_the_maximum(api, user):
    make_runs(user, 3)

    assert len(api.get(RUNS, {"page_size": MAX_PAGE_SIZE}).json()["results"]) == 3
    assert len(api.get(RUNS, {"page_size": 1}).json()["results"]) == 1
