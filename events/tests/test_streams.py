"""Publishing live events to Redis Streams: the three streams and their expiry, and a Redis that
does not answer. Real Redis (the test's events Redis); no server, no worker."""

from __future__ import annotations

import socket
import uuid

import pytest
import redis
from django.conf import settings

from events import streams


@pytest.fixture
def fresh_client():
    """The module caches its client and script: forget them around a test that moves the URL."""
    streams.client.cache_clear()
    streams.publish_script.cache_clear()
    yield
    streams.client.cache_clear()
    streams.publish_script.cache_clear()


def test_a_batch_goes_to_each_runs_each_owners_and_the_staff_stream(fresh_client):
    runs = [str(uuid.uuid4()) for _ in range(3)]
    owners = [f"streams-test-{uuid.uuid4().hex}", f"streams-test-{uuid.uuid4().hex}"]
    client = redis.Redis.from_url(settings.EVENTS_REDIS_URL)
    staff_before = client.xlen(streams.STAFF_KEY)

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
    assert client.xlen(streams.STAFF_KEY) == staff_before + 3
    client.delete(*map(streams.run_key, runs), *map(streams.user_key, owners))


def test_a_redis_that_does_not_answer_costs_no_error_and_pauses_publishing(
    settings, fresh_client, monkeypatch
):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.EVENTS_REDIS_URL = f"redis://127.0.0.1:{port}/0"  # nothing listens there
    monkeypatch.setattr(streams, "_paused_until", 0.0)

    streams.publish([streams.Outgoing(1, {"id": str(uuid.uuid4()), "status": "queued"})])

    assert streams._paused_until > 0
