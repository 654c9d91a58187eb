"""What the broker still holds for the project's queues: the task ids of waiting or held messages.

The scan compares `queued` runs with it, so a run whose message is gone (a broker restarted
without persistence, a purge, a message acknowledged by mistake) is sent again within a scan or
two instead of after an hour. Redis is read exactly: every priority list of every queue, and the
messages workers hold unacknowledged. RabbitMQ cannot be read without consuming, so it is only
trusted when its queues are empty, and then the workers are asked what they hold.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from celery import current_app
from kombu.exceptions import ChannelError

logger = logging.getLogger(__name__)

# Past this many waiting messages the scan stops reading the lists (a few MB) and falls back to
# its age threshold: a backlog that long is healthy work, not lost messages.
MAX_MESSAGES_READ = 50_000
INSPECT_TIMEOUT = 1.0  # seconds the workers get to say what they hold (RabbitMQ only)


def held_task_ids(queues: Iterable[str], *, recent_seconds: float) -> set[str] | None:
    """Task ids of messages waiting in `queues`, or held by a worker that took one less than
    `recent_seconds` ago or holds it for a countdown; None when the broker cannot tell."""
    try:
        if current_app.connection_for_read().transport.driver_type == "redis":
            # A pooled connection: a new one costs more than the reads (the scan asks every 15 s).
            with current_app.connection_or_acquire() as conn:
                return redis_held(conn.default_channel, list(queues), recent_seconds)
        # Its own connection: a passive declare of a missing queue closes the channel.
        with current_app.connection_for_read() as conn:
            if conn.transport.driver_type == "amqp":
                return amqp_held(conn, list(queues))
    except Exception as exc:  # the broker is away: nothing can be said, nothing is re-sent
        logger.warning("could not read the broker's queues: %s", exc)
    return None


def redis_held(channel, queues: list[str], recent_seconds: float) -> set[str] | None:
    client = channel.client
    keys = [channel._q_for_pri(queue, pri) for queue in queues for pri in channel.priority_steps]
    keys = list(dict.fromkeys(keys))
    pipe = client.pipeline()
    for key in keys:
        pipe.llen(key)
    if sum(pipe.execute()) > MAX_MESSAGES_READ:
        return None
    pipe = client.pipeline()
    for key in keys:
        pipe.lrange(key, 0, -1)
    pipe.hgetall(channel.unacked_key)
    pipe.zrange(channel.unacked_index_key, 0, -1, withscores=True)
    *lists, unacked, delivered_at = pipe.execute()
    held = {task_id for payloads in lists for task_id in map(message_task_id, payloads) if task_id}
    held |= held_by_workers(unacked, dict(delivered_at), recent_seconds)
    return held


def held_by_workers(unacked: dict, delivered_at: dict, recent_seconds: float) -> set[str]:
    """Messages a worker took recently (it is about to start them) or holds for a countdown.

    A message a worker took long ago and has not started belongs to a worker that died: Redis
    would hand it out again only after the visibility timeout, so it does not count as held.
    """
    now = time.time()
    held = set()
    for tag, raw in unacked.items():
        try:
            message = json.loads(raw)[0]
        except (ValueError, IndexError, TypeError):
            continue
        headers = message.get("headers") or {}
        eta = parse_eta(headers.get("eta"))
        taken = delivered_at.get(tag, 0)
        if now - taken < recent_seconds or (eta is not None and eta > now - recent_seconds):
            held.add(str(headers.get("id", "")))
    return held


def message_task_id(payload: bytes) -> str | None:
    try:
        return str(json.loads(payload)["headers"]["id"])
    except (ValueError, KeyError, TypeError):
        return None


def parse_eta(value) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        return None


def amqp_held(conn, queues: list[str]) -> set[str] | None:
    if sum(amqp_waiting(conn, queue) for queue in queues):
        return None  # messages we cannot see without taking them
    replies = current_app.control.inspect(timeout=INSPECT_TIMEOUT)
    held = set()
    for method in (replies.active, replies.reserved, replies.scheduled):
        for tasks in (method() or {}).values():
            for task in tasks:
                held.add(str(task.get("id") or task.get("request", {}).get("id", "")))
    return held


def amqp_waiting(conn, queue: str) -> int:
    """Messages ready in `queue` (a passive declare); a queue never declared holds none."""
    try:
        with conn.channel() as channel:  # a failed passive declare closes its channel
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:
        return 0
