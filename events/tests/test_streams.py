"""Publishing live events to Redis Streams: the three streams and their expiry, and a Redis that
does not answer. Real Redis (the test's events Redis); no server, no worker."""

from __future__ import annotations

import socket
import threading
import uuid

import redis
from django.conf import settings

from events import streams


def test_a_batch_goes_to_each_runs_each_owners_and_the_staff_stream():
    runs = [str(uuid.uuid4()) for _ in range(3)]
    owners = [f"streams-test-{uuid.uuid4().hex}", f"streams-test-{uuid.uuid4().hex}"]
    client = redis.Redis.from_url(settings.EVENTS_REDIS_URL)

    streams.publish(
        streams.Outgoing(owners[i % 2], {"id": run, "status": "queued", "n": i})
        for i, run in enumerate(runs)
    )

    for i, run in enumerate(runs):
        entries = client.xrange(streams.run_key(run))
        assert [streams.decode(fields) for _, fields in entries] == [
            {"id": run, "status": "queued", "n": i}
        ]
        assert 0 < client.ttl(streams.run_key(run)) <= streams.TTL_SECONDS
    first_owner = client.xrange(streams.user_key(owners[0]))
    assert [streams.decode(fields)["id"] for _, fields in first_owner] == [runs[0], runs[2]]
    assert 0 < client.ttl(streams.user_key(owners[1])) <= streams.TTL_SECONDS
    # The newest three, not a count: a full staff stream is trimmed as it grows.
    newest = client.xrevrange(streams.STAFF_KEY, count=3)
    assert [streams.decode(fields)["id"] for _, fields in reversed(newest)] == runs
    client.delete(*map(streams.run_key, runs), *map(streams.user_key, owners))


def test_a_redis_that_does_not_answer_costs_no_error_and_pauses_publishing(settings, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.EVENTS_REDIS_URL = f"redis://127.0.0.1:{port}/0"  # nothing listens there
    monkeypatch.setattr(streams, "_paused_until", 0.0)

    streams.publish([streams.Outgoing(1, {"id": str(uuid.uuid4()), "status": "queued"})])

    assert streams._paused_until > 0


def test_threads_publish_each_on_a_connection_of_its_own():
    runs = [str(uuid.uuid4()) for _ in range(4)]
    owner = f"streams-test-{uuid.uuid4().hex}"

    def publish_many(run: str) -> None:
        for n in range(20):
            streams.publish([streams.Outgoing(owner, {"id": run, "n": n})])

    threads = [threading.Thread(target=publish_many, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    client = redis.Redis.from_url(settings.EVENTS_REDIS_URL)
    for run in runs:
        entries = client.xrange(streams.run_key(run))
        assert [streams.decode(fields)["n"] for _, fields in entries] == list(range(20))
    assert client.xlen(streams.user_key(owner)) == 80
    assert streams.publish_script() is not threading_script(streams.publish_script)
    client.delete(*map(streams.run_key, runs), streams.user_key(owner))


def threading_script(get):
    """The publish script another thread holds."""
    held = []
    thread = threading.Thread(target=lambda: held.append(get()))
    thread.start()
    thread.join()
    return held[0]


def test_a_connection_the_server_closed_is_opened_again_and_the_event_published(monkeypatch):
    monkeypatch.setattr(streams, "_paused_until", 0.0)
    run = str(uuid.uuid4())
    streams.publish([streams.Outgoing(1, {"id": run, "n": 0})])
    held = streams.publish_script().registered_client
    client = redis.Redis.from_url(settings.EVENTS_REDIS_URL)
    client.client_kill_filter(_id=held.client_id())  # as a restart or an idle timeout would

    streams.publish([streams.Outgoing(1, {"id": run, "n": 1})])

    entries = client.xrange(streams.run_key(run))
    assert [streams.decode(fields)["n"] for _, fields in entries] == [0, 1]
    assert streams._paused_until == 0.0
    client.delete(streams.run_key(run))
