"""The run history (`GET /api/{kind}/{id}/history/`, DRF) and the live event streams
(`GET /api/{kind}/{id}/events/`, `GET /api/events/`: Server-Sent Events, async views served by
the ASGI server).

A kind is found through its own API: `/api/{kind}/{id}/` must resolve to the detail route of a
`runs.api.RunViewSet`, whose `model` is the run's; so a new run kind gets both without touching
this app, and ownership is the same rule as its own views (`for_user`: others' runs are 404).

A stream costs its connection one database read when it opens (who asks, may they see the run,
its state now) and one Redis connection blocked on XREAD while it lasts; nothing polls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import cast

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, generics, serializers
from rest_framework.request import Request
from rest_framework.settings import api_settings

from runs.api import RunViewSet, first_line, without_paths
from runs.api_errors import DETAILS
from runs.models import ACTIVE, Run, run_models

from . import streams
from .models import RunEvent

logger = logging.getLogger(__name__)

ACTIVE_SNAPSHOT_LIMIT = 200  # runs of each kind whose state /api/events/ sends when it opens
# Streams opening at once read the database this many at a time per process: 200 clients that
# reconnect together must not take 200 database connections (MariaDB's default cap is 151).
CONNECT_READS = 8
_reads: asyncio.Semaphore | None = None


async def read_db(function, *args):
    """`function(*args)` on a thread, at most CONNECT_READS at a time; it closes its connection."""
    global _reads
    if _reads is None:
        _reads = asyncio.Semaphore(CONNECT_READS)
    async with _reads:
        return await sync_to_async(function)(*args)


def run_model(kind: str, pk: uuid.UUID) -> type[Run] | None:
    """The run model behind `/api/{kind}/`, read from the URL conf; None if it is not a run kind."""
    try:
        match = resolve(f"/api/{kind}/{pk}/")
    except Resolver404:
        return None
    view = getattr(match.func, "cls", None)
    if isinstance(view, type) and issubclass(view, RunViewSet):
        return getattr(view, "model", None)
    return None


# History


class RunEventSerializer(serializers.ModelSerializer):
    message = serializers.SerializerMethodField()

    class Meta:
        model = RunEvent
        fields = ("at", "from_status", "to_status", "attempt", "host", "pid", "reason", "message")
        read_only_fields = fields

    def get_message(self, event: RunEvent) -> str:
        """As the run's own message: staff get it as stored, the owner without server paths."""
        user = getattr(self.context.get("request"), "user", None)
        if user is not None and user.is_staff:
            return event.message
        return without_paths(first_line(event.message))


KIND = OpenApiParameter(
    "kind",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The run kind's collection, as in its own URLs: `podcasts` or `videos`.",
)
RUN_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Run id.")


@extend_schema_view(
    get=extend_schema(
        summary="A run's history",
        description="Every status change of the run, oldest first: when, from and to which "
        "status, on which attempt and worker (host, pid), and why.",
        parameters=[KIND, RUN_ID],
    )
)
class RunHistoryView(generics.ListAPIView):
    serializer_class = RunEventSerializer
    cursor_ordering = ("at", "id")  # oldest first (runs.pagination.CursorPages)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RunEvent.objects.none()
        kind, pk = self.kwargs["kind"], self.kwargs["pk"]
        model = run_model(kind, pk)
        if model is None or not model.objects.for_user(self.request.user).filter(pk=pk).exists():
            raise exceptions.NotFound()
        return RunEvent.objects.filter(run_id=pk, kind=model._meta.label_lower).order_by("at", "id")


# Live events


def error(status: int, detail: str = "", **headers: str) -> JsonResponse:
    response = JsonResponse({"detail": detail or DETAILS.get(status, "")}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def authenticate(request: HttpRequest):
    """The user, as the rest of the API finds one (token or session), or a JSON 401."""
    classes = cast(list, api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    drf = Request(request, authenticators=[cls() for cls in classes])
    try:
        user = drf.user
    except exceptions.AuthenticationFailed as exc:
        return None, error(401, str(exc.detail), WWW_Authenticate="Token")
    if user is None or not user.is_authenticated:
        return None, error(401, WWW_Authenticate="Token")
    return user, None


def snapshot(run: Run) -> dict:
    return streams.event(
        run.pk,
        run._meta.label_lower,
        status=run.status,
        progress=run.progress,
        stage=run.stage,
        message=run.message,
        attempt=run.attempt,
        at=timezone.now(),
    )


def open_run(request: HttpRequest, kind: str, pk: uuid.UUID):
    """(error, None) or (None, the run's state now): the stream's one database read."""
    try:
        user, failure = authenticate(request)
        if failure is not None:
            return failure, None
        model = run_model(kind, pk)
        run = model.objects.for_user(user).filter(pk=pk).first() if model else None
        if run is None:
            return error(404), None
        return None, snapshot(run)
    finally:
        connection.close()  # a stream may stay open for hours: it holds no database connection


def open_all(request: HttpRequest):
    try:
        user, failure = authenticate(request)
        if failure is not None:
            return failure, None
        return None, user
    finally:
        connection.close()


def active_runs(user) -> list[dict]:
    """The state of the user's runs in progress (staff: everyone's), oldest first."""
    try:
        runs = [
            run
            for model in run_models()
            for run in model.objects.for_user(user)
            .filter(status__in=ACTIVE)
            .order_by("-created_at")[:ACTIVE_SNAPSHOT_LIMIT]
        ]
        runs.sort(key=lambda run: run.created_at)
        return [snapshot(run) for run in runs]
    finally:
        connection.close()


def refuse(request: HttpRequest) -> JsonResponse | None:
    if not isinstance(request, ASGIRequest):  # a sync worker must never be held by a stream
        return error(
            503, "Live events are served by the ASGI server (uvicorn web.asgi:application)."
        )
    if not streams.enabled():
        return error(503, "Live events need Redis: set EVENTS_REDIS_URL.")
    return None


def last_event_id(request: HttpRequest) -> tuple[str | None, JsonResponse | None]:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return None, None
    if not streams.ENTRY_ID.match(raw):
        return None, error(
            400,
            "Last-Event-ID must be the id of an event this stream sent, such as 1700000000000-0.",
        )
    return raw, None


async def run_events(request: HttpRequest, kind: str, pk: uuid.UUID):
    """The run's events until its terminal one, then the stream ends."""
    last_id, failure = last_event_id(request)
    failure = refuse(request) or failure
    if failure is not None:
        return failure
    key = streams.run_key(pk)
    conn = streams.reader()
    first: list[tuple[str, dict]] = []
    try:
        # The stream's end before the database read: nothing published after it is missed.
        tail = await streams.newest_id(conn, key)
        failure, state = await read_db(open_run, request, kind, pk)
        if failure is not None:
            await conn.aclose()
            return failure
        assert state is not None
        if last_id is None:
            cursor, first = tail, [(tail, state)]
        else:
            cursor = last_id
            if await streams.missed_some(conn, key, last_id):
                first.append((tail, state))
            backlog = await conn.xrange(key, min=f"({last_id}", count=streams.RUN_MAXLEN)
            for entry_id, fields in backlog or []:
                cursor = streams.text(entry_id)
                first.append((cursor, streams.decode(fields)))
            if streams.is_terminal(state) and not any(streams.is_terminal(d) for _, d in first):
                first.append((cursor, state))  # its terminal event never reached the stream
    except redis.RedisError as exc:
        await conn.aclose()
        logger.warning("live events unavailable: %s", exc)
        return error(503, "Live events are unavailable: Redis does not answer.")
    return event_stream(sse(conn, key, first, cursor, ends=True))


async def all_events(request: HttpRequest):
    """Every run of the user (staff: every run), as long as the client stays."""
    last_id, failure = last_event_id(request)
    failure = refuse(request) or failure
    if failure is not None:
        return failure
    failure, user = await read_db(open_all, request)
    if failure is not None:
        return failure
    key = streams.STAFF_KEY if user.is_staff else streams.user_key(user.pk)
    conn = streams.reader()
    first: list[tuple[str, dict]] = []
    try:
        tail = await streams.newest_id(conn, key)
        if last_id is None or await streams.missed_some(conn, key, last_id):
            first = [(tail, data) for data in await read_db(active_runs, user)]
        cursor = last_id or tail
    except redis.RedisError as exc:
        await conn.aclose()
        logger.warning("live events unavailable: %s", exc)
        return error(503, "Live events are unavailable: Redis does not answer.")
    return event_stream(sse(conn, key, first, cursor, ends=False))


def event_stream(content: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(content, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx passes each event on at once
    return response


def frame(entry_id: str, data: dict) -> bytes:
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {entry_id}\nevent: run\ndata: {body}\n\n".encode()


async def sse(
    conn, key: str, first: list[tuple[str, dict]], cursor: str, *, ends: bool
) -> AsyncIterator[bytes]:
    """The first events, then each new entry of `key` as it comes (XREAD BLOCK), a comment
    when nothing came for EVENTS_HEARTBEAT_SECONDS; ends after a terminal event when `ends`."""
    block_ms = max(1, int(settings.EVENTS_HEARTBEAT_SECONDS * 1000))
    try:
        yield b"retry: 3000\n\n"
        for entry_id, data in first:
            yield frame(entry_id, data)
            if ends and streams.is_terminal(data):
                return
        while True:
            try:
                replies = await conn.xread({key: cursor}, count=100, block=block_ms)
            except redis.RedisError as exc:
                logger.warning("live events: reading %s failed: %s", key, exc)
                yield b": the event source is unavailable; reconnect with Last-Event-ID\n\n"
                return
            if not replies:
                yield b": heartbeat\n\n"
                continue
            for entry_id, fields in replies[0][1]:
                cursor = streams.text(entry_id)
                data = streams.decode(fields)
                yield frame(cursor, data)
                if ends and streams.is_terminal(data):
                    return
    finally:
        await conn.aclose()
