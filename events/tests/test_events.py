"""Live events and the run history through the real ASGI server (uvicorn), a real prefork
worker, Redis and the database. Every wait is bounded; nothing asserts on timing."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import httpx
import pytest
from celery import current_app
from django.conf import settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from events.maintenance import prune_orphans
from events.models import RunEvent
from events.tests.sse import Comments, events, stream
from ops.testing import start_asgi, wait_for
from runs import lifecycle
from runs.maintenance import cleanup
from runs.models import TERMINAL, RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

RUNS = "test/sleep-runs"  # the test kind's collection: /api/test/sleep-runs/<id>/events/


@pytest.fixture(scope="module")
def asgi(django_db_setup, django_db_blocker, broker_url):
    """uvicorn with the whole app, heartbeats every second so a test sees one soon."""
    with django_db_blocker.unblock():
        server, base = start_asgi(broker_url, EVENTS_HEARTBEAT_SECONDS="1")
    yield base
    server.stop()


def client_for(base: str, user) -> httpx.Client:
    token = Token.objects.create(user=user).key
    return httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=30)


def status_of(run) -> str:
    run.refresh_from_db()
    return run.status


def test_a_stream_follows_a_run_from_queued_to_succeeded_and_ends(asgi, user):
    run = SleepRun.objects.create(owner=user, steps=4, seconds_per_step=0.3)
    seen = []
    with client_for(asgi, user) as client, stream(client, f"/api/{RUNS}/{run.pk}/events/") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        received = events(r)
        first = next(received)  # the state at connect, from the database
        assert first.type == "run" and first.data["status"] == RunStatus.PENDING
        assert first.data["id"] == str(run.pk) and first.data["kind"] == "sleeper.sleeprun"
        lifecycle.dispatch(run)
        for event in received:  # ends by itself after the terminal event
            seen.append(event)
    statuses = [event.data["status"] for event in seen]
    assert statuses[0] == RunStatus.QUEUED
    assert RunStatus.RUNNING in statuses
    assert statuses[-1] == RunStatus.SUCCEEDED and statuses.count(RunStatus.SUCCEEDED) == 1
    progress = [event.data["progress"] for event in seen if event.data["progress"] is not None]
    assert progress == sorted(progress) and progress[-1] == 100
    assert len({p for p in progress if 0 < p < 100}) >= 2  # rising through the steps
    running = next(event for event in seen if event.data["status"] == RunStatus.RUNNING)
    assert running.data["attempt"] == 1 and running.data["reason"] == "claimed"
    assert all(event.id for event in seen)
    assert set(seen[-1].data) == {
        "id", "kind", "status", "progress", "stage", "message", "attempt", "reason", "at",
    }  # fmt: skip


def test_a_stream_resumes_after_a_disconnect_without_losing_the_terminal_event(asgi, user):
    run = SleepRun.objects.create(owner=user, steps=6, seconds_per_step=0.4)
    with client_for(asgi, user) as client:
        with stream(client, f"/api/{RUNS}/{run.pk}/events/") as r:
            received = events(r)
            next(received)
            lifecycle.dispatch(run)
            for event in received:
                if event.data["status"] == RunStatus.RUNNING:
                    resume_from = event
                    break
        # Disconnected; the run finishes while no one listens.
        wait_for(lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=60, what="the run to end")

        rest = []
        with stream(client, f"/api/{RUNS}/{run.pk}/events/", last_event_id=resume_from.id) as r:
            assert r.status_code == 200
            rest = list(events(r))  # the stream ends after the terminal event
    assert rest, "nothing after the resume point"
    assert [event.data["status"] for event in rest][-1] == RunStatus.SUCCEEDED
    ids = [tuple(map(int, event.id.split("-"))) for event in rest]
    assert ids == sorted(ids) and ids[0] > tuple(map(int, resume_from.id.split("-")))
    assert all(event.data["status"] != RunStatus.QUEUED for event in rest)  # nothing repeated


def test_a_finished_run_answers_its_final_state_and_ends(asgi, user):
    run = SleepRun.objects.create(owner=user, steps=1)
    lifecycle.dispatch(run)
    wait_for(lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=60, what="the run to end")
    with client_for(asgi, user) as client, stream(client, f"/api/{RUNS}/{run.pk}/events/") as r:
        received = list(events(r))
    assert [event.data["status"] for event in received] == [RunStatus.SUCCEEDED]


def test_the_user_stream_sees_the_users_runs_and_not_anothers(asgi, user, other_user):
    theirs = SleepRun.objects.create(owner=other_user, steps=1)
    mine = [SleepRun.objects.create(owner=user, steps=2, seconds_per_step=0.2) for _ in range(2)]
    seen: list = []
    comments = Comments()
    with client_for(asgi, user) as client, stream(client, "/api/events/") as r:
        assert r.status_code == 200
        received = events(r, comments)
        lifecycle.dispatch(theirs)
        # Their run ends (and is published) before ours start: if the stream carried it, it
        # would arrive before ours end.
        wait_for(lambda: status_of(theirs) in TERMINAL, timeout=60, what="their run to end")
        for run in mine:
            lifecycle.dispatch(run)
        ended: set[str] = set()
        for event in received:
            seen.append(event)
            if event.data["status"] in TERMINAL:
                ended.add(event.data["id"])
            if ended >= {str(run.pk) for run in mine}:
                break
    ids = {event.data["id"] for event in seen}
    assert ids == {str(run.pk) for run in mine}
    assert str(theirs.pk) not in ids


def test_staff_see_every_run_on_the_stream(asgi, user, django_user_model):
    staff = django_user_model.objects.create_user("carol", password="x-long-pass-3", is_staff=True)
    run = SleepRun.objects.create(owner=user, steps=1)
    ended = None
    with client_for(asgi, staff) as client, stream(client, "/api/events/") as r:
        received = events(r)
        lifecycle.dispatch(run)
        for event in received:  # a read waits 30 s at most
            if event.data["id"] == str(run.pk) and event.data["status"] in TERMINAL:
                ended = event.data["status"]
                break
    assert ended == RunStatus.SUCCEEDED


def test_others_runs_are_404_json_and_strangers_401(asgi, user, other_user):
    run = SleepRun.objects.create(owner=other_user, steps=1)
    with client_for(asgi, user) as client:
        for path in (f"/api/{RUNS}/{run.pk}/events/", f"/api/{RUNS}/{run.pk}/history/"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json() == {"detail": "Not found."}
        unknown_kind = client.get(f"/api/nothing/{run.pk}/events/")
        assert unknown_kind.status_code == 404 and "detail" in unknown_kind.json()
        bad_resume = client.get(
            f"/api/{RUNS}/{run.pk}/events/", headers={"Last-Event-ID": "yesterday"}
        )
        assert bad_resume.status_code == 400 and "Last-Event-ID" in bad_resume.json()["detail"]
    anonymous = httpx.get(f"{asgi}/api/events/", timeout=10)
    assert anonymous.status_code == 401 and "detail" in anonymous.json()
    wrong = httpx.get(f"{asgi}/api/events/", headers={"Authorization": "Token nope"}, timeout=10)
    assert wrong.status_code == 401 and "detail" in wrong.json()


def test_a_quiet_stream_sends_heartbeats(asgi, user):
    run = SleepRun.objects.create(owner=user)  # pending: nothing happens to it
    comments = Comments()
    with client_for(asgi, user) as client, stream(client, f"/api/{RUNS}/{run.pk}/events/") as r:
        lines = r.iter_lines()
        for line in lines:
            if line.startswith(": heartbeat"):
                comments.seen.append(line)
                break
    assert comments.seen


def active_child_pid(task_id: str) -> int | None:
    for tasks in (current_app.control.inspect(timeout=1).active() or {}).values():
        for task in tasks:
            if task["id"] == task_id:
                return task["worker_pid"]
    return None


def test_the_history_explains_a_killed_worker(asgi, user):
    run = SleepRun.objects.create(owner=user, steps=8, seconds_per_step=0.5)
    lifecycle.dispatch(run)
    wait_for(lambda: status_of(run) == RunStatus.RUNNING, timeout=60, what="the run to start")
    pid = wait_for(lambda: active_child_pid(run.task_id), what="the task to be active")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status_of(run) == RunStatus.SUCCEEDED, timeout=90, what="the run to end")

    with client_for(asgi, user) as client:
        answer = client.get(f"/api/{RUNS}/{run.pk}/history/")
    assert answer.status_code == 200
    history = answer.json()["results"]
    assert [event["to_status"] for event in history][:2] == [RunStatus.QUEUED, RunStatus.RUNNING]
    assert history[-1]["to_status"] == RunStatus.SUCCEEDED and history[-1]["attempt"] == 2
    assert {event["attempt"] for event in history} >= {1, 2}
    assert any(event["reason"] in ("worker lost; taken over", "worker lost") for event in history)
    assert all(event["host"] and event["pid"] for event in history)
    ats = [event["at"] for event in history]
    assert ats == sorted(ats)


def test_cleanup_prunes_a_runs_history_with_the_run(user):
    old, kept = (SleepRun.objects.create(owner=user) for _ in range(2))
    for run in (old, kept):
        assert lifecycle.request_cancel(run)  # pending -> cancelled: one history row each
    assert RunEvent.objects.filter(run_id=old.pk).count() == 1
    SleepRun.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=40))

    assert cleanup(retention_days=30)["runs"] == 1
    assert not RunEvent.objects.filter(run_id=old.pk).exists()
    assert RunEvent.objects.filter(run_id=kept.pk).count() == 1


def test_history_of_a_run_deleted_another_way_goes_in_a_bounded_pass(user):
    run = SleepRun.objects.create(owner=user)
    lifecycle.request_cancel(run)
    RunEvent.objects.filter(run_id=run.pk).update(at=timezone.now() - timedelta(days=40))
    SleepRun.objects.filter(pk=run.pk).delete()  # as the admin would: no signal for events
    alive = SleepRun.objects.create(owner=user)
    lifecycle.request_cancel(alive)
    RunEvent.objects.filter(run_id=alive.pk).update(at=timezone.now() - timedelta(days=40))

    assert prune_orphans(older_than_days=30) == 1
    assert not RunEvent.objects.filter(run_id=run.pk).exists()
    assert RunEvent.objects.filter(run_id=alive.pk).exists()


def test_the_admin_shows_the_history_as_a_table(user):
    from events.admin import history

    run = SleepRun.objects.create(owner=user)
    assert history(None, run) == "No events yet."
    lifecycle.request_cancel(run, by="staff")
    table = history(None, run)
    assert "<table>" in table and "pending → cancelled" in table
    assert "cancelled by staff" in table and settings.TIME_ZONE in table
