"""Live run events in Redis Streams.

Every event is added (XADD, trimmed with MAXLEN ~) to three streams: the run's own (it expires a
day after its last event), its owner's, and the staff stream (every run). A stream keeps its
entries after they are read, so a client that reconnects with `Last-Event-ID` gets what it
missed, the terminal event included; pub/sub would have lost it. Readers block on XREAD: no
database poll per client. Publishing is best effort: the history rows in the database are the
record, and a client that connects reads the run's state from there first.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aredis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from runs.api import first_line, without_paths
from runs.models import TERMINAL

logger = logging.getLogger(__name__)

PREFIX = "mediaruns:events:"
STAFF_KEY = f"{PREFIX}staff"
RUN_MAXLEN = 1000  # a run's transitions and steps; trimmed approximately (~)
USER_MAXLEN = 2000
STAFF_MAXLEN = 20000
TTL_SECONDS = 24 * 3600  # a run's (and an idle user's) stream expires a day after its last event
ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def run_key(run_id: object) -> str:
    return f"{PREFIX}run:{run_id}"


def user_key(owner_id: object) -> str:
    return f"{PREFIX}user:{owner_id}"


def enabled() -> bool:
    return bool(settings.EVENTS_REDIS_URL)


def event(
    run_id: object,
    kind: str,
    *,
    status: str,
    progress: int | None,
    stage: str,
    message: str,
    attempt: int,
    reason: str = "",
    at: datetime | None = None,
) -> dict:
    """One event's data, as clients receive it. The message is the owner's (no server paths)."""
    return {
        "id": str(run_id),
        "kind": kind,
        "status": str(status),
        "progress": progress,
        "stage": stage,
        "message": without_paths(first_line(message or "")),
        "attempt": attempt,
        "reason": reason,
        "at": (at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def is_terminal(data: dict) -> bool:
    return data.get("status") in TERMINAL


@dataclass(frozen=True)
class Outgoing:
    owner_id: object
    data: dict


PAUSE_AFTER_FAILURE = 5.0  # seconds without publishing after Redis failed to answer
_paused_until = 0.0


def client() -> redis.Redis:
    """A publishing connection (sync: receivers run in workers and request threads). Short
    timeouts and no retries: a Redis that does not answer costs a transition a second at most,
    and then publishing pauses for PAUSE_AFTER_FAILURE, so an outage never slows the runs."""
    return redis.Redis.from_url(
        settings.EVENTS_REDIS_URL,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        # One connection held, not a pool's: checking one out of redis-py's pool and back (a
        # poll of the socket, bookkeeping) cost a publish about a third of its CPU.
        single_connection_client=True,
    )


# XADD of each event to its run's, its owner's and the staff stream, and the expiries, done in
# Redis: one command for a batch. Sent as commands, redis-py packs and parses five per event in
# Python, more CPU than the rest of a maintenance pass's event work. The limits are part of the
# script, not arguments: fewer for redis-py to pack on every publish.
# KEYS: the staff stream, then each event's run and user streams; ARGV: each event's data.
PUBLISH_SCRIPT = f"""
for j = 1, (#KEYS - 1) / 2 do
  local run, user, data = KEYS[2 * j], KEYS[2 * j + 1], ARGV[j]
  redis.call('XADD', run, 'MAXLEN', '~', {RUN_MAXLEN}, '*', 'data', data)
  redis.call('EXPIRE', run, {TTL_SECONDS})
  redis.call('XADD', user, 'MAXLEN', '~', {USER_MAXLEN}, '*', 'data', data)
  redis.call('EXPIRE', user, {TTL_SECONDS})
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', {STAFF_MAXLEN}, '*', 'data', data)
end
return #ARGV
"""

_held = threading.local()


def publish_script() -> Script:
    """The publish script on this thread's own connection: threads never wait for each other's
    round trips, and a forked child (or another URL, in tests) never uses a socket it did not
    open."""
    owner = (os.getpid(), settings.EVENTS_REDIS_URL)
    held = getattr(_held, "script", None)
    if held is None or held[0] != owner:
        held = _held.script = (owner, client().register_script(PUBLISH_SCRIPT))
    return held[1]


def run_script(keys: list[str], args: list[str]) -> None:
    """The publish script on this thread's connection. One the server closed since the last
    publish (a restart, its idle timeout) is opened again once, as a pool's checkout would have
    found it closed; a timeout is not tried again (the script may have run)."""
    try:
        publish_script()(keys=keys, args=args)
    except redis.ConnectionError:  # redis-py closed the connection: the next call opens one
        publish_script()(keys=keys, args=args)


def publish(events: Iterable[Outgoing]) -> None:
    """Add each event to its run's, its owner's and the staff stream, in one round trip."""
    if not enabled():
        return
    keys: list[str] = [STAFF_KEY]
    args: list[str] = []
    for item in events:
        keys += [run_key(item.data["id"]), user_key(item.owner_id)]
        args.append(json.dumps(item.data, separators=(",", ":")))
    global _paused_until
    count = len(args)
    if not count:
        return
    if time.monotonic() < _paused_until:
        logger.info("%s live event(s) not published: Redis failed a moment ago", count)
        return
    try:
        run_script(keys, args)
    except redis.RedisError as exc:
        _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning("%s live event(s) not published: %s", count, exc)


# Reading (async: the SSE views under the ASGI server)


def reader() -> aredis.Redis:
    """A connection of the stream's own: XREAD BLOCK holds it while it waits."""
    return aredis.Redis.from_url(settings.EVENTS_REDIS_URL, socket_connect_timeout=2)


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(fields: object) -> dict:
    return json.loads(fields[b"data"]) if isinstance(fields, dict) else {}


async def newest_id(conn: aredis.Redis, key: str) -> str:
    """The id of the stream's last entry, "0-0" when it has none."""
    last = await conn.xrevrange(key, count=1)
    return text(last[0][0]) if last else "0-0"


async def oldest_id(conn: aredis.Redis, key: str) -> str | None:
    first = await conn.xrange(key, count=1)
    return text(first[0][0]) if first else None


def id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def missed_some(conn: aredis.Redis, key: str, last_id: str) -> bool:
    """True when entries after `last_id` may be gone: the stream expired (or never was), or its
    oldest entry is later than `last_id` (trimmed). Then the client gets the state from the
    database first."""
    oldest = await oldest_id(conn, key)
    if oldest is None:
        return True
    return last_id != "0-0" and id_tuple(oldest) > id_tuple(last_id)
