"""The lean submit (runs/submit.py with podcast/submit.py) answers as the DRF path does.

Every request is sent twice, once to each path (the DRF one with the kind's lean reader taken
away), and the answers are compared: status, body, headers, and the rows a success writes. The
plain case must really take the lean path, and everything else must be handed over untouched.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from events.models import RunEvent
from podcast.models import PodcastRun, Source
from podcast.views import PodcastViewSet
from runs import limits
from runs import submit as lean
from runs.broker import held_task_ids
from runs.maintenance import queue_names
from runs.tests import lean as helpers

from .conftest import episode_request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("short_profile", "contrast_speakers")]

PODCASTS = "/api/podcasts/"


@pytest.fixture
def paths(monkeypatch):
    return helpers.spy_on_paths(monkeypatch)


def drf_only(monkeypatch):
    helpers.drf_only(monkeypatch, PodcastViewSet)


def post(client, body, **extra):
    return helpers.post(client, PODCASTS, body, **extra)


def answer(reply) -> dict:
    return helpers.answer(reply, PODCASTS)


def both_ways(monkeypatch, client, body, **extra) -> tuple[dict, dict]:
    return helpers.both_ways(monkeypatch, PodcastViewSet, client, PODCASTS, body, **extra)


def stored(run: PodcastRun) -> dict:
    """A run's row, links and history as the submit wrote them, less what differs by nature."""
    row = helpers.stored_row(run)
    row["sources"] = list(run.sources.order_by("pk").values_list("pk", flat=True))
    row["history"] = list(
        RunEvent.objects.filter(run_id=run.pk).values_list(
            "kind", "owner_id", "from_status", "to_status", "attempt", "reason", "message"
        )
    )
    assert run.task_id and run.queued_at and run.created_at
    return row


def test_a_plain_submit_takes_the_lean_path_and_writes_what_drf_writes(
    monkeypatch, api, user, source, paths
):
    second = Source.objects.create(owner=user, title="Wasps", content="Wasps build paper nests.")
    body = episode_request([second.pk, str(source.pk), second.pk], priority="high")
    body["episode_name"] = "  Bees at work  "  # stripped, as the serializer strips it
    body["unknown"] = "ignored by both"

    lean_answer, drf_answer = both_ways(monkeypatch, api, body)

    assert paths == ["lean"]
    assert lean_answer == drf_answer
    assert lean_answer["status"] == 202 and lean_answer["body"]["status"] == "queued"
    made_lean, made_drf = PodcastRun.objects.order_by("created_at")
    assert stored(made_lean) == stored(made_drf)
    assert made_lean.episode_name == "Bees at work"
    assert made_lean.sources_snapshot == [
        {"id": second.pk, "title": "Wasps"},
        {"id": source.pk, "title": "Bees"},
    ]
    assert stored(made_lean)["history"] == [
        ("podcast.podcastrun", user.pk, "pending", "queued", 0, "dispatched", "")
    ]


def test_defaults_are_the_serializers(monkeypatch, api, source, paths):
    body = episode_request([source.pk])
    del body["briefing_suffix"]
    lean_answer, drf_answer = both_ways(monkeypatch, api, body)

    assert paths == ["lean"] and lean_answer == drf_answer
    made_lean, made_drf = PodcastRun.objects.order_by("created_at")
    assert stored(made_lean) == stored(made_drf)
    assert (made_lean.priority, made_lean.briefing_suffix) == ("normal", "")


BAD_BODIES = {
    "no episode profile": {"episode_profile": None},
    "an unknown profile": {"speaker_profile": "nobody"},
    "a number for a slug": {"episode_profile": 7},
    "a blank name": {"episode_name": "   "},
    "a long name": {"episode_name": "n" * 201},
    "a name that is a number": {"episode_name": 42},
    "a long briefing": {"briefing_suffix": "b" * 2001},
    "an unknown priority": {"priority": "urgent"},
    "a priority that is not text": {"priority": 1},
    "no sources": {"source_ids": []},
    "sources not in a list": {"source_ids": "1"},
    "a true id": {"source_ids": [True]},
    "a word for an id": {"source_ids": ["abc"]},
    "an id out of range": {"source_ids": [2**63]},
    "a missing source": {"source_ids": [999_999]},
    "too many sources": {"source_ids": list(range(1, 52))},
    "a NUL": {"episode_name": "a\u0000b"},
    "a schedule in the past": {"delay_seconds": -1},
    "a callback that is not a URL": {"callback_url": "nowhere"},
}


@pytest.mark.parametrize("change", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_bodies_get_the_drf_answer(monkeypatch, api, source, paths, change):
    body = {**episode_request([source.pk]), **change}
    if change.get("episode_profile", "") is None:
        del body["episode_profile"]
    lean_answer, drf_answer = both_ways(monkeypatch, api, body)

    assert lean_answer == drf_answer
    assert lean_answer["status"] == 400, lean_answer
    assert paths == ["handed over"]
    assert not PodcastRun.objects.exists()


def test_another_users_source_reads_as_missing(monkeypatch, api, other_user, paths):
    theirs = Source.objects.create(owner=other_user, title="Theirs", content="Not yours.")
    lean_answer, drf_answer = both_ways(monkeypatch, api, episode_request([theirs.pk]))

    assert lean_answer == drf_answer and lean_answer["status"] == 400
    assert "source_ids" in lean_answer["body"]
    assert paths == ["handed over"]


MALFORMED = {
    "not JSON": "{not json",
    "a list": "[1, 2]",
    "nested too deep": "[" * 40 + "]" * 40,
    "a number out of range": '{"episode_name": 1e400}',
    "nothing": "",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bodies_get_the_drf_answer(monkeypatch, api, source, body):
    lean_answer, drf_answer = both_ways(monkeypatch, api, body)
    assert lean_answer == drf_answer and lean_answer["status"] == 400


def test_what_is_not_plain_is_handed_over_untouched(monkeypatch, api, source, paths):
    body = episode_request([source.pk])
    for extra in (
        {"HTTP_ACCEPT": "text/html"},  # DRF's 406
        {"QUERY_STRING": "format=json"},
        {"HTTP_IDEMPOTENCY_KEY": "k" * 256},  # DRF's 400 for the key
    ):
        lean_answer, drf_answer = both_ways(monkeypatch, api, body, **extra)
        assert lean_answer == drf_answer, extra
    form = api.post(PODCASTS, body)  # multipart: the DRF path reads forms
    assert form.status_code == 202, form.json()
    assert "lean" not in paths


def test_authentication_failures_get_drf_answers(monkeypatch, user, source, paths):
    token = Token.objects.create(user=user)
    clients = {
        "none": APIClient(),
        "bad token": APIClient(HTTP_AUTHORIZATION="Token not-a-real-key"),
        "bad header": APIClient(HTTP_AUTHORIZATION="Token"),
        "other scheme": APIClient(HTTP_AUTHORIZATION=f"Bearer {token.key}"),
    }
    for name, client in clients.items():
        lean_answer, drf_answer = both_ways(monkeypatch, client, episode_request([source.pk]))
        assert lean_answer == drf_answer, name
        assert lean_answer["status"] == 401, name
    user.is_active = False
    user.save()
    inactive = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    lean_answer, drf_answer = both_ways(monkeypatch, inactive, episode_request([source.pk]))
    assert lean_answer == drf_answer and lean_answer["status"] == 401
    assert "lean" not in paths and not PodcastRun.objects.exists()


def test_a_session_is_handed_over_and_still_needs_its_csrf_token(user, source, paths):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    reply = post(client, episode_request([source.pk]))
    assert reply.status_code == 403 and "CSRF" in reply.json()["detail"]
    assert paths == ["handed over"]


def test_the_lean_path_keeps_idempotency(monkeypatch, api, other_api, source, paths):
    key = {"HTTP_IDEMPOTENCY_KEY": "order-7"}
    first = post(api, episode_request([source.pk]), **key)
    again = post(api, episode_request([source.pk]), **key)
    changed = post(api, episode_request([source.pk], episode_name="Other"), **key)

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()
    assert PodcastRun.objects.count() == 1
    assert paths == ["lean", "handed over", "handed over"]  # the replays are DRF's
    run = PodcastRun.objects.get()
    assert run.idempotency_key == "order-7" and len(run.request_fingerprint) == 64


def test_a_key_is_the_owners_own(api, other_user, source, paths):
    theirs = Source.objects.create(owner=other_user, title="T", content="Their own text.")
    other = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    key = {"HTTP_IDEMPOTENCY_KEY": "same"}
    mine = post(api, episode_request([source.pk]), **key)
    their = post(other, episode_request([theirs.pk]), **key)
    assert mine.status_code == their.status_code == 202
    assert mine.json()["id"] != their.json()["id"]
    assert paths == ["lean", "lean"]


def test_a_race_on_the_key_is_answered_by_the_replay(monkeypatch, api, user, source, paths):
    """The key's run appears between the lean path's check and its INSERT: the unique constraint
    refuses the second row and the DRF path replays the first."""
    first = post(api, episode_request([source.pk]), HTTP_IDEMPOTENCY_KEY="race")
    real = lean.read_caller
    # The SELECT does not see the key's run yet: it is looked up as if there were no key.
    monkeypatch.setattr(
        lean, "read_caller", lambda model, token, key, *rest: real(model, token, None, *rest)
    )

    again = post(api, episode_request([source.pk]), HTTP_IDEMPOTENCY_KEY="race")

    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert PodcastRun.objects.count() == 1
    assert paths == ["lean", "handed over"]


@pytest.fixture
def counted_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    cache.clear()


def test_the_throttle_counts_each_submit_once_on_either_path(
    monkeypatch, api, source, settings, counted_cache, paths
):
    settings.THROTTLE_SUBMIT_RATE = "3/day"
    assert post(api, episode_request([])).status_code == 400  # counted, then handed over
    assert post(api, episode_request([source.pk])).status_code == 202
    assert post(api, episode_request([source.pk])).status_code == 202

    refused = post(api, episode_request([source.pk]))
    assert refused.status_code == 429
    with monkeypatch.context() as patch:
        drf_only(patch)
        refused_by_drf = post(api, episode_request([source.pk]))
    assert answer(refused)["body"]["detail"] == answer(refused_by_drf)["body"]["detail"]
    assert "3/day" in refused.json()["detail"] and refused["Retry-After"]
    assert PodcastRun.objects.count() == 2
    assert paths == ["handed over", "lean", "lean", "handed over"]


def test_the_cap_is_counted_under_the_lean_path(monkeypatch, api, source, settings):
    settings.RUN_ACTIVE_LIMIT_PER_USER = 2
    assert post(api, episode_request([source.pk])).status_code == 202
    assert post(api, episode_request([source.pk])).status_code == 202
    lean_answer, drf_answer = both_ways(monkeypatch, api, episode_request([source.pk]))

    assert lean_answer == drf_answer and lean_answer["status"] == 429
    assert "RUN_ACTIVE_LIMIT_PER_USER" in lean_answer["body"]["detail"]
    assert PodcastRun.objects.count() == 2
    PodcastRun.objects.filter(pk=PodcastRun.objects.first().pk).update(status="succeeded")
    assert post(api, episode_request([source.pk])).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_the_cap_is_exact_when_one_user_submits_concurrently(api, user, source, paths, settings):
    """Cap N, 3N submits of one token at once, each on its connection: every submit writes its
    run before it takes the cap's lock (runs/limits.py), yet exactly N are accepted, the others
    answer 429 (never a deadlock or a lock wait timeout: a 500), and only the N runs remain."""
    cap = 3
    settings.RUN_ACTIVE_LIMIT_PER_USER = cap
    token = f"Token {Token.objects.get(user=user).key}"
    start = threading.Barrier(3 * cap)
    codes: list[int] = []

    def submit() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=token)
        try:
            start.wait(30)
            codes.append(post(client, episode_request([source.pk])).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(3 * cap)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(codes) == [202] * cap + [429] * (2 * cap)
    accepted = set(PodcastRun.objects.filter(owner=user).values_list("pk", flat=True))
    assert len(accepted) == cap and paths.count("lean") == cap  # all took the lean path
    # Each accepted run has its history row, the refused ones none (rolled back with them). A
    # worker left running by another test may claim an accepted run meanwhile: more rows of it.
    dispatched = RunEvent.objects.filter(owner_id=user.pk, reason="dispatched")
    assert sorted(dispatched.values_list("run_id", flat=True)) == sorted(accepted)
    assert (
        set(RunEvent.objects.filter(owner_id=user.pk).values_list("run_id", flat=True)) == accepted
    )


@pytest.mark.django_db(transaction=True)
def test_the_first_read_checks_the_kept_connection_instead_of_a_ping(
    monkeypatch, api, source, paths
):
    """Each request checks a kept connection before its first use (CONN_HEALTH_CHECKS: a
    ping); the lean submit's first SELECT is that check. A connection the server dropped fails
    it, and it is read again on a new connection: the client still gets its 202."""
    from django.db import connections

    if connection.vendor != "mysql":
        pytest.skip("a MySQL connection the server kills")
    pings: list[bool] = []
    real_is_usable = connections["default"].is_usable
    monkeypatch.setattr(
        connections["default"], "is_usable", lambda: pings.append(True) or real_is_usable()
    )
    connection.ensure_connection()
    connection.health_check_done = False  # what every request's start does (request_started)
    assert post(api, episode_request([source.pk])).status_code == 202
    assert pings == []

    dropped = connection.connection.thread_id()
    killer = connections.create_connection("default")
    with killer.cursor() as cursor:
        cursor.execute(f"KILL {int(dropped)}")
    killer.close()
    connection.health_check_done = False
    reply = post(api, episode_request([source.pk]))

    assert reply.status_code == 202 and paths == ["lean", "lean"]
    assert connection.connection.thread_id() != dropped
    assert PodcastRun.objects.count() == 2


def test_the_cap_counts_every_kind(user, settings):
    from video.models import VideoRun

    settings.RUN_ACTIVE_LIMIT_PER_USER = 5
    VideoRun.objects.create(owner=user, status="running", title="t", prompt="p")
    VideoRun.objects.create(owner=user, status="succeeded", title="t", prompt="p")
    assert limits.count_active_runs(user, up_to=5) == 1
    with pytest.raises(limits.ActiveRunLimit):
        settings.RUN_ACTIVE_LIMIT_PER_USER = 1
        limits.check_active_runs(user)


def test_the_schema_still_describes_the_drf_create(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    create = schema["paths"][PODCASTS]["post"]
    assert create["operationId"] == "podcasts_create"
    assert "202" in create["responses"] and "422" in create["responses"]
    request_schema = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert request_schema.endswith("/PodcastCreateRequest")
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


@pytest.mark.django_db(transaction=True)
def test_a_lean_submit_whose_process_died_before_the_send_is_sent_at_the_next_scan(
    monkeypatch, api, source, paths
):
    """The run is committed queued and its message is lost with the process: the scan's
    lost-message check sends it again, as for the DRF path (runs/tests/test_recovery.py)."""
    from runs import lifecycle, maintenance

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle.transaction, "on_commit", lambda callback, **kwargs: None)
        reply = post(api, episode_request([source.pk]))
    assert reply.status_code == 202 and paths == ["lean"]
    run = PodcastRun.objects.get(pk=reply.json()["id"])
    assert run.status == "queued" and RunEvent.objects.filter(run_id=run.pk).count() == 1
    assert run.task_id not in (held_task_ids(queue_names(), recent_seconds=60) or ())
    earlier = timezone.now() - timedelta(seconds=30)
    PodcastRun.objects.filter(pk=run.pk).update(created_at=earlier, queued_at=earlier)

    assert maintenance.scan()["requeued"] == 1
    run.refresh_from_db()
    assert run.task_id in (held_task_ids(queue_names(), recent_seconds=60) or ())


@pytest.mark.django_db(transaction=True)
def test_a_committed_lean_submit_is_sent_once(api, source, paths):
    reply = post(api, episode_request([source.pk]))
    assert reply.status_code == 202 and paths == ["lean"]
    run = PodcastRun.objects.get(pk=reply.json()["id"])
    assert run.status == "queued"
    assert run.task_id in (held_task_ids(queue_names(), recent_seconds=60) or ())
    assert connection.in_atomic_block is False
