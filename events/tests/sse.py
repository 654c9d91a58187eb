"""A small Server-Sent Events client over httpx streaming, for the tests and the benchmark."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Event:
    id: str
    type: str
    data: dict


@dataclass
class Comments:
    seen: list[str] = field(default_factory=list)


def events(response: httpx.Response, comments: Comments | None = None) -> Iterator[Event]:
    """The events of an open `text/event-stream` answer, as they arrive."""
    event_id, event_type = "", "message"
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(event_id, event_type, json.loads("\n".join(data)))
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            if comments is not None:
                comments.seen.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)


def stream(
    client: httpx.Client, path: str, *, last_event_id: str | None = None, timeout: float = 30
):
    """`client.stream("GET", path)` with the SSE headers; a read waits at most `timeout`."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return client.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=timeout))
