"""The broker's Redis transport (web/broker.py): one redis-py client per channel for publishing,
and messages still arrive."""

from __future__ import annotations

import pytest
from celery import current_app
from django.conf import settings

from web.broker import Transport

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"), reason="the Redis transport"
)


def test_the_project_uses_it_under_the_redis_name():
    with current_app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        assert connection.as_uri().startswith("redis")


def test_publishes_share_one_client_and_arrive():
    with current_app.connection_for_write() as connection:
        channel = connection.default_channel
        queue = "test-redis-transport"
        producer = connection.Producer()
        producer.publish({"n": 1}, routing_key=queue, declare=[])
        first = channel._create_client()
        producer.publish({"n": 2}, routing_key=queue, declare=[])
        assert channel._create_client() is first
        simple = connection.SimpleQueue(queue)
        try:
            messages = [simple.get(timeout=2) for _ in range(2)]
            for message in messages:
                message.ack()
        finally:
            simple.queue.delete()
            simple.close()
        assert sorted(message.payload["n"] for message in messages) == [1, 2]
