"""The lean submit: `POST /api/<kind>/` of a plain new run, answered without DRF's machinery.

DRF's create spends most of a submit's CPU on itself: authentication classes, negotiation, a
ModelSerializer built field by field for every request, and the ORM compiling each statement. The
plain submit (a JSON body, a token, no schedule and no callback) is the request clients send by
the thousand, so a kind may answer it here with the same checks in hand-written statements:

1. the body parsed as DRF parses it, and checked by the kind's reader (`RunViewSet.lean_reader`,
   e.g. podcast/submit.py);
2. one SELECT: the token's user (active), the run an Idempotency-Key already made, and what the
   body names (the reader's columns and joins: profiles, the caller's sources); it is the
   request's first statement, and checks the kept connection in place of Django's ping;
3. the submit throttle, counted once (`limits.SubmitThrottle`, shared with the DRF path);
4. one transaction: the run INSERTed `queued` with its links and its history row, then the cap
   (`limits.check_active_runs`: the count read under the user's cap lock, taken last so it is
   held for the count and the COMMIT only), and the run's message sent after the commit
   (`lifecycle.send_on_commit`: the outbox's guarantee as on the DRF path).

Whatever is not plain, or not right, is handed to the DRF path, which answers exactly as it
always has: session or another authentication, a bad token, another content type or Accept, a
query string, a body the reader does not take as it is (every 400), an idempotent replay or its
422, a throttled request, the cap reached, a race on the key. So every error answer has one
source, and this path only ever answers 202. A throttle verdict reached here travels with the
request, so a request handed over is never counted twice.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from rest_framework.authtoken.models import Token

from . import lifecycle, limits, statements
from .api_errors import StrictJSONParser
from .idempotency import IDEMPOTENCY_HEADER, fingerprint
from .models import Run

JSON = "application/json"
ACCEPTED_ANSWERS = ("", "*/*", JSON, "application/*")
# Fields of a new run that every kind's create takes and the lean path leaves to DRF: a
# scheduled run or one with a webhook is rare, and their checks stay in one place.
HANDED_OVER_FIELDS = ("callback_url", "run_at", "delay_seconds")


class HandOver(Exception):
    """Not the plain case, or not right: the DRF path answers this request."""


@dataclass(frozen=True)
class Caller:
    """The authenticated user, as far as a submit needs it."""

    pk: int
    is_staff: bool


@dataclass
class NewRun:
    """What a kind's reader makes of a body: the run's field values (by attribute name, owner,
    status and the idempotency fields excluded) and its many-to-many links, in order."""

    values: dict[str, Any]
    links: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Lookup:
    """What a kind's reader needs read with the caller: SQL columns and joins (the caller's user
    row is `u`), their parameters in that order, and what makes the run of the rows read (the
    kind's columns of each row; HandOver when something named is missing)."""

    make: Callable[[list[tuple]], NewRun]
    columns: str = ""
    joins: str = ""
    params: list[Any] = field(default_factory=list)


# A kind's reader: the parsed body -> its Lookup, or HandOver.
Reader = Callable[[dict], Lookup]


def plain_text(value, limit: int, *, blank: bool) -> str:
    """A DRF CharField's value (trim_whitespace on), taken only as a string: stripped, within
    `limit`, empty only if `blank`."""
    if not isinstance(value, str):
        raise HandOver("not a string")
    value = value.strip()
    if len(value) > limit or not (value or blank):
        raise HandOver("too long, or blank")
    return value


def with_lean_submit(viewset, view: Callable, basename: str) -> Callable:
    """`view` (the router's view of `viewset`'s list route) with POSTs tried here first. The
    attributes DRF and the schema read (cls, actions, initkwargs, csrf_exempt) are kept."""

    def view_with_lean_submit(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        reader = viewset.lean_reader()
        if request.method == "POST" and reader is not None:
            try:
                return submit(request, viewset.model, reader, basename)
            except HandOver:
                pass
        return view(request, *args, **kwargs)

    functools.update_wrapper(view_with_lean_submit, view)
    return view_with_lean_submit


def submit(request: HttpRequest, model: type[Run], reader: Reader, basename: str) -> HttpResponse:
    """The 202 of a new run, or HandOver (before anything is written)."""
    key = plain_request(request)
    token = token_of(request)
    data = parse(request)
    if any(name in data for name in HANDED_OVER_FIELDS):
        raise HandOver("a schedule or a callback")
    lookup = reader(data)
    caller, rows = read_caller(model, token, key, lookup)
    new = lookup.make(rows)
    count_throttle(request, caller)
    run = model(
        owner_id=caller.pk,
        idempotency_key=key,
        request_fingerprint=fingerprint(data),
        **new.values,
        **lifecycle.queued_on_insert(),
    )
    try:
        with transaction.atomic():
            # Every write first, the cap's lock last: every other submit of the user waits for
            # that lock, so it is held for the count and the COMMIT only.
            insert(run)
            link(run, new.links)
            lifecycle.send_on_commit(run)
            limits.check_active_runs(caller, written=1)
    except (limits.ActiveRunLimit, IntegrityError):  # the cap, or a race on the key
        raise HandOver("the DRF path answers the cap or the replay") from None
    return accepted(request, run, basename)


def plain_request(request: HttpRequest) -> str | None:
    """Check the request's shape; its Idempotency-Key (None without one)."""
    meta = request.META
    if request.GET or meta.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != JSON:
        raise HandOver("a query string or another content type")
    if (request.content_params or {}).get("charset", "utf-8").lower() != "utf-8":
        raise HandOver("another charset")
    if meta.get("HTTP_ACCEPT", "").strip() not in ACCEPTED_ANSWERS:
        raise HandOver("negotiation")
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 0 < len(key) <= 255:
        raise HandOver("the DRF path refuses the key")
    return key


def token_of(request: HttpRequest) -> str:
    """The key of `Authorization: Token <key>`, read as DRF's TokenAuthentication reads it."""
    words = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(words) != 2 or words[0].lower() != "token" or not words[1].isascii():
        raise HandOver("no token: session authentication, or DRF's 401")
    return words[1]


def read_caller(
    model: type[Run], token: str, key: str | None, lookup: Lookup
) -> tuple[Caller, list[tuple]]:
    """In one SELECT: the token's user (DRF's TokenAuthentication: the token exists and its user
    is active), whether `key` made a run already, and the kind's rows (`lookup`)."""
    columns = f", {lookup.columns}" if lookup.columns else ""
    sql = caller_sql(model).format(columns=columns, joins=lookup.joins)
    rows = statements.first_read(lambda: fetch_all(sql, [key, *lookup.params, token]))
    if not rows or not rows[0][1]:
        raise HandOver("an unknown token or an inactive user: DRF's 401")
    if rows[0][3] is not None:
        raise HandOver("the key made a run already: the DRF path replays it")
    return Caller(pk=rows[0][0], is_staff=bool(rows[0][2])), [row[4:] for row in rows]


def fetch_all(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@cache
def caller_sql(model: type[Run]) -> str:
    """The caller's SELECT, with {columns} (after a comma) and {joins} for the kind's part. The
    user is `u`."""
    quote = connection.ops.quote_name
    user = get_user_model()._meta
    runs = model._meta

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    user_pk = f"u.{column(user, user.pk.name)}"
    # No key: `= NULL` matches no row, so the column reads NULL as for a new key.
    earlier = (
        f"(SELECT 1 FROM {quote(runs.db_table)} r WHERE r.{column(runs, 'owner')} = {user_pk} "
        f"AND r.{column(runs, 'idempotency_key')} = %s)"
    )
    return (
        f"SELECT {user_pk}, u.{column(user, 'is_active')}, u.{column(user, 'is_staff')}, "
        f"{earlier}{{columns}} "
        f"FROM {quote(Token._meta.db_table)} t INNER JOIN {quote(user.db_table)} u "
        f"ON {user_pk} = t.{column(Token._meta, 'user')} {{joins}} "
        f"WHERE t.{column(Token._meta, 'key')} = %s"
    )


def parse(request: HttpRequest) -> dict:
    """The body as DRF's parser reads it (the same checks: depth, NUL, surrogates, numbers)."""
    length = request.META.get("CONTENT_LENGTH", "")
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if not length.isdigit() or not 0 < int(length) <= (limit or int(length)):
        raise HandOver("no body, or one over the limit")
    try:  # request.body keeps the bytes, so the DRF path can read them again
        data = StrictJSONParser().parse(io.BytesIO(request.body), JSON, {})
    except Exception:
        raise HandOver("the DRF path names what is wrong with the body") from None
    if not isinstance(data, dict):
        raise HandOver("not an object")
    return data


def count_throttle(request: HttpRequest, caller: Caller) -> None:
    """Count this submit (once); refused, it goes to the DRF path with the verdict."""
    verdict = limits.SubmitThrottle().count(limits.user_identity(caller.pk))
    setattr(request, limits.VERDICT_ATTRIBUTE, verdict)
    if verdict is not None and not verdict.allowed:
        raise HandOver("throttled: the DRF path answers 429 with this verdict")


def insert(run: Run) -> None:
    """One INSERT of every column, each value prepared as the ORM's save prepares it."""
    fields = insert_fields(type(run))
    values = [f.get_db_prep_save(f.pre_save(run, True), connection) for f in fields]
    statements.write(insert_sql(type(run)), values)


@cache
def insert_fields(model: type[Run]) -> tuple:
    return tuple(model._meta.local_concrete_fields)


@cache
def insert_sql(model: type[Run]) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in insert_fields(model))
    marks = ", ".join(["%s"] * len(insert_fields(model)))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"


def link(run: Run, links: dict[str, list[Any]]) -> None:
    """The new run's many-to-many rows, one INSERT per relation (it has none yet)."""
    for name, targets in links.items():
        if not targets:
            continue
        table, own, other = link_columns(type(run), name)
        own_value = type(run)._meta.pk.get_db_prep_save(run.pk, connection)
        marks = ", ".join(["(%s, %s)"] * len(targets))
        params = [value for target in targets for value in (own_value, target)]
        statements.write(f"INSERT INTO {table} ({own}, {other}) VALUES {marks}", params)


@cache
def link_columns(model: type[Run], name: str) -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    relation = model._meta.get_field(name)
    through = relation.remote_field.through._meta  # type: ignore[union-attr]
    return (
        quote(through.db_table),
        quote(relation.m2m_column_name()),  # type: ignore[union-attr]
        quote(relation.m2m_reverse_name()),  # type: ignore[union-attr]
    )


def accepted(request: HttpRequest, run: Run, basename: str) -> HttpResponse:
    """The DRF path's 202 (`RunViewSet.accepted`), byte for byte."""
    url = request.build_absolute_uri(reverse(f"{basename}-detail", args=[run.pk]))
    body = {"id": str(run.pk), "status": run.status, "url": url}
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status=202,
        content_type=JSON,
    )
    response["Location"] = url
    response["Allow"] = "GET, POST, HEAD, OPTIONS"
    return response
