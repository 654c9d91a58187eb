"""Maintenance in batches: many runs sent through one producer in one pass, leases on waiting
runs, and what a refusing broker leaves behind. Real database, Redis and worker."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

import pytest
import redis
from celery import current_app
from django.db import transaction
from django.utils import timezone

from events.models import RunEvent
from ops.testing import broker_of
from runs import maintenance, outbox
from runs import waiting as pollers
from runs.broker import message_task_id
from runs.models import RunStatus
from runs.tests.helpers import RedisServer, in_threads, wait_for
from runs.tests.sleeper.models import SleepEffect, SleepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def old_pending_runs(user, count: int) -> list:
    """`count` runs left pending five minutes ago (the broker was down); their ids."""
    SleepRun.objects.bulk_create(SleepRun(owner=user, stage="batch") for _ in range(count))
    runs = SleepRun.objects.filter(stage="batch")
    runs.update(created_at=timezone.now() - timedelta(minutes=5))
    return list(runs.values_list("pk", flat=True))


def wait_all_succeeded(pks: list) -> None:
    runs = SleepRun.objects.filter(pk__in=pks)
    wait_for(
        lambda: runs.filter(status=RunStatus.SUCCEEDED).count() == len(pks),
        timeout=180,
        what=f"{len(pks)} runs to succeed",
    )


def test_200_pending_runs_relayed_in_one_pass_all_reach_the_worker_once(user):
    pks = old_pending_runs(user, 200)

    outcome = maintenance.scan(pending_grace_seconds=10)

    assert outcome["dispatched"] == 200
    wait_all_succeeded(pks)
    assert SleepEffect.objects.filter(run__in=pks).count() == 200
    task_ids = set(SleepRun.objects.filter(pk__in=pks).values_list("task_id", flat=True))
    assert len(task_ids) == 200  # a fresh task id each, written by the one CASE update


def test_two_scans_at_once_send_each_of_200_pending_runs_once(user):
    pks = old_pending_runs(user, 200)

    outcomes = in_threads(2, lambda: maintenance.scan(pending_grace_seconds=10))

    assert sum(o["dispatched"] for o in outcomes) == 200
    wait_all_succeeded(pks)
    queued = RunEvent.objects.filter(run_id__in=pks, to_status=RunStatus.QUEUED)
    per_run = Counter(queued.values_list("run_id", flat=True))
    assert len(per_run) == 200 and set(per_run.values()) == {1}
    assert SleepEffect.objects.filter(run__in=pks).count() == 200


def queued_task_ids(url: str) -> set[str | None]:
    """Task ids of the messages waiting in a broker no worker reads."""
    client = redis.Redis.from_url(url)
    lists = [key for key in client.keys("*") if client.type(key) == b"list"]
    return {message_task_id(payload) for key in lists for payload in client.lrange(key, 0, -1)}


def test_a_batch_the_broker_refuses_goes_back_to_pending_and_goes_out_when_it_returns(user):
    pks = old_pending_runs(user, 50)
    own_redis = RedisServer().start()
    url = own_redis.url
    try:
        own_redis.stop()
        with broker_of(url):
            assert outbox.relay_pending() == 0
        assert SleepRun.objects.filter(stage="batch", status=RunStatus.PENDING).count() == 50

        own_redis.start()
        with broker_of(url):
            assert outbox.relay_pending() == 50
        sent = SleepRun.objects.filter(pk__in=pks, status=RunStatus.QUEUED)
        assert sent.count() == 50
        assert set(sent.values_list("task_id", flat=True)) == queued_task_ids(url)
    finally:
        own_redis.stop()


def test_a_waiting_run_is_polled_once_per_lease_then_again(user, monkeypatch):
    run = SleepRun.objects.create(owner=user, status=RunStatus.WAITING, remote_job_id="job-1")
    polls: list[str] = []
    monkeypatch.setitem(pollers._pollers, SleepRun, lambda polled: polls.append(str(polled.pk)))

    assert maintenance.scan()["polled"] == 1
    assert maintenance.scan()["polled"] == 0  # leased: polled a moment ago
    lease_over = timezone.now() - timedelta(seconds=maintenance.POLL_LEASE_SECONDS + 1)
    SleepRun.objects.filter(pk=run.pk).update(heartbeat_at=lease_over)
    assert maintenance.scan()["polled"] == 1
    assert polls == [str(run.pk)] * 2


def test_kinds_without_a_poller_are_not_leased(user):
    run = SleepRun.objects.create(owner=user, status=RunStatus.WAITING, remote_job_id="job-1")

    assert maintenance.scan()["polled"] == 0
    run.refresh_from_db()
    assert run.heartbeat_at is None and run.status == RunStatus.WAITING


def test_the_batchs_task_sent_events_reach_an_event_receiver(user):
    """The relay publishes the batch's task-sent events as one message holding the list; a Celery
    event receiver (Flower's way of following tasks) reads each event as if sent one by one."""
    pks = old_pending_runs(user, 5)
    seen: list[dict] = []
    listening = threading.Event()

    def listen() -> None:
        with current_app.connection_for_read() as conn:
            receiver = current_app.events.Receiver(conn, handlers={"task-sent": seen.append})
            receiver.on_iteration = listening.set  # subscribed: a fanout keeps no message
            for _ in receiver.itercapture(limit=None, timeout=None, wakeup=False):
                if len(seen) >= len(pks):
                    receiver.should_stop = True

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert listening.wait(timeout=10)

    assert outbox.relay_pending() == 5

    wait_for(lambda: len(seen) >= len(pks), timeout=30, what="the task-sent events")
    task_ids = set(SleepRun.objects.filter(pk__in=pks).values_list("task_id", flat=True))
    assert {event["uuid"] for event in seen} == task_ids
    for event in seen:
        assert event["name"] == SleepRun.task_name
        assert event["queue"] and event["routing_key"] == event["queue"]
        assert event["hostname"] and event["pid"] and event["clock"]


def waiting_messages(url: str) -> dict[str, dict]:
    """The messages waiting in a broker no worker reads, by task id."""
    client = redis.Redis.from_url(url)
    lists = [key for key in client.keys("*") if client.type(key) == b"list"]
    messages = [json.loads(raw) for key in lists for raw in client.lrange(key, 0, -1)]
    return {message["headers"]["id"]: message for message in messages}


def test_a_batchs_messages_are_the_ones_send_task_writes(user):
    """The outbox builds its messages with Celery's message API, not `send_task`: the same
    headers, body, properties, queue and priority, task id aside."""
    runs = [SleepRun.objects.create(owner=user, priority=p) for p in ("high", "normal", "low")]
    own_redis = RedisServer().start()  # no worker reads it: the messages stay to be compared
    try:
        with broker_of(own_redis.url):
            for run in runs:
                args = [str(run.pk)]
                current_app.send_task(
                    run.task_name,
                    args=args,
                    task_id=f"reference-{run.pk}",
                    priority=outbox.message_priority(run.priority),
                    argsrepr=repr(args),  # as the outbox sent them before (Celery's own repr)
                    kwargsrepr="{}",
                )
            with transaction.atomic():
                locked = outbox.lock_batch(SleepRun.objects.filter(pk__in=[r.pk for r in runs]))
                task_ids = outbox.mark_queued(SleepRun, locked)
            assert outbox.send_marked(SleepRun, locked, task_ids) == 3
        messages = waiting_messages(own_redis.url)
    finally:
        own_redis.stop()

    def comparable(message: dict) -> dict:
        headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
        properties = dict(message["properties"])
        for varying in ("correlation_id", "delivery_tag"):
            properties.pop(varying)
        return {**message, "headers": headers, "properties": properties}

    for run in locked:
        ours, reference = messages[task_ids[run.pk]], messages[f"reference-{run.pk}"]
        assert ours["headers"]["root_id"] == task_ids[run.pk]
        assert comparable(ours) == comparable(reference)
