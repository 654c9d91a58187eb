"""Completion webhooks: made with the run's terminal state, POSTed by the system queue.

1. `on_run_changed` (a `run_changed` receiver) writes one WebhookDelivery per run ending that has
   a `callback_url`, in the transaction of the change: the delivery commits with the terminal
   state or not at all. After the commit it sends `webhooks.deliver` with a fresh claim token.
2. `deliver` claims the row by its token (one conditional UPDATE: a duplicate or redelivered
   message matches nothing), leases it for LEASE_SECONDS, POSTs once with a timeout and no
   redirects, and records the attempt: a 2xx ends it `delivered` (never sent again); anything
   else sets `next_attempt_at` by exponential backoff, until WEBHOOK_RETRY_HOURS have passed.
3. `send_due`, a step of the scan (every 15 s), sends every pending delivery that is due with a
   new token: a retry whose time came, a first send the broker refused, a claim whose worker died
   (its lease ran out). No message waits in a worker with a countdown, so a restart of any
   process loses nothing: the row and its due time are the truth.

At least once: a worker killed after the receiver answered but before the answer was recorded
sends it again after the lease; receivers dedupe on `X-Webhook-Id`.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from datetime import datetime, timedelta

import httpx
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from runs.api import first_line, readable_error, without_paths
from runs.models import TERMINAL, Run
from runs.signals import RunChange

from . import addresses, kinds, signing
from .models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookSecret

logger = logging.getLogger(__name__)

TASK = "webhooks.deliver"
# A claimed delivery is not sent again for this long: above the system queue's hard time limit
# (3 min), so a second POST never overlaps a first one still in flight.
LEASE_SECONDS = 200
FIRST_RETRY_SECONDS = 10
LONGEST_WAIT_SECONDS = 3600
BATCH = 500
USER_AGENT = "mediaruns-webhooks/1"
RESPONSE_KEEP = 200  # characters of a failed answer's body kept in the log


def backoff_seconds(attempts: int) -> float:
    """After the n-th failed attempt: 10 s, 20 s, 40 s … at most an hour, ±10 % jitter."""
    base = min(FIRST_RETRY_SECONDS * 2 ** (max(attempts, 1) - 1), LONGEST_WAIT_SECONDS)
    return base * random.uniform(0.9, 1.1)


# 1. Made with the terminal state


def on_run_changed(sender: type[Run], changes: list[RunChange], **kwargs) -> None:
    # Runs known to have no callback URL need no read (the lifecycle's hot path).
    ended = {c.run_id: c for c in changes if c.to_status in TERMINAL and c.callback_url != ""}
    if not ended:
        return
    runs = list(sender.objects.filter(pk__in=list(ended)).exclude(callback_url=""))
    if not runs:
        return
    now = timezone.now()
    rows = [
        WebhookDelivery(
            owner_id=run.owner_id,
            run_kind=sender._meta.label_lower,
            run_id=run.pk,
            run_attempt=ended[run.pk].attempt,
            run_status=ended[run.pk].to_status,
            url=run.callback_url,
            body=body_of(sender, run, ended[run.pk].to_status),
            next_attempt_at=now + timedelta(seconds=LEASE_SECONDS),
            token=uuid.uuid4().hex,
        )
        for run in runs
    ]
    # A second signal of the same ending (a duplicate, a redelivered message) conflicts on
    # (run_kind, run_id, run_attempt) and is skipped: one delivery per ending.
    with transaction.atomic():  # a savepoint: the sender's transaction stays usable
        WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    tokens = [row.token for row in rows]
    made = list(WebhookDelivery.objects.filter(token__in=tokens).values_list("pk", "token"))
    if made:
        transaction.on_commit(lambda: send(made))


def body_of(model: type[Run], run: Run, status: str) -> str:
    """The run's JSON as its owner reads it in the API (message and error as sentences)."""
    return json.dumps(
        {
            "event": "run.finished",
            "id": str(run.pk),
            "kind": kinds.kind_name(model),
            "status": status,
            "progress": run.progress,
            "stage": run.stage,
            "message": without_paths(first_line(run.message)),
            "error": readable_error(run.message, run.error),
            "attempt": run.attempt,
            "created_at": iso(run.created_at),
            "run_at": iso(run.run_at),
            "finished_at": iso(run.finished_at or timezone.now()),
            "url": kinds.run_url(model, run.pk),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def send(claims: list[tuple[int, str]]) -> None:
    """Publish one message per (delivery, token); a refused one is found by the scan later."""
    for pk, token in claims:
        try:
            current_app.send_task(TASK, args=[pk, token])
        except Exception as exc:  # kombu raises several kinds when the broker is away
            logger.warning("webhook delivery %s waits for the scan; not sent: %s", pk, exc)
            return


# 3. The scan's step


def send_due(now: datetime | None = None) -> int:
    """Send the pending deliveries that are due, each with a new token, leased meanwhile."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .select_for_update(skip_locked=True)
            .order_by()
            .values_list("pk", flat=True)[:BATCH]
        )
        claims = [(pk, uuid.uuid4().hex) for pk in due]
        if claims:
            WebhookDelivery.objects.filter(pk__in=due).update(
                token=Case(*(When(pk=pk, then=Value(token)) for pk, token in claims)),
                next_attempt_at=now + timedelta(seconds=LEASE_SECONDS),
            )
            transaction.on_commit(lambda: send(claims))
    return len(claims)


def prune(now: datetime | None = None) -> int:
    """The cleanup's step: finished deliveries older than RUN_RETENTION_DAYS, with their log."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RUN_RETENTION_DAYS)
    finished = WebhookDelivery.objects.filter(
        status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED], created_at__lt=cutoff
    ).order_by()
    deleted = 0
    while pks := list(finished.values_list("pk", flat=True)[:BATCH]):
        WebhookDelivery.objects.filter(pk__in=pks).delete()
        deleted += len(pks)
    return deleted


# 2. One attempt


def deliver(delivery_id: int, token: str) -> str:
    """Claim the delivery with `token`, POST it once, record the attempt; returns what happened."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, token=token
    ).update(
        token="",
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=LEASE_SECONDS),
    )
    if not claimed:
        return "not claimed"  # delivered already, or another message holds it
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    started, clock = timezone.now(), time.monotonic()
    code, error, permanent = post(delivery)
    duration_ms = round((time.monotonic() - clock) * 1000)
    return record(delivery, started, duration_ms, code, error, permanent=permanent)


def post(delivery: WebhookDelivery) -> tuple[int | None, str, bool]:
    """(status code or None, error text, whether retrying is pointless)."""
    try:
        refused = addresses.refusal(delivery.url)
    except addresses.Unresolvable as exc:
        return None, f"DNS: {exc}", False
    except ValueError:
        return None, "The URL has no valid host or port.", True
    if refused:
        return None, refused, True
    body = delivery.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.HEADER: signing.header(secret_of(delivery.owner_id), body),
        "X-Webhook-Id": str(delivery.pk),
        "X-Webhook-Attempt": str(delivery.attempts),
    }
    try:
        with (
            httpx.Client(
                timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False
            ) as client,
            client.stream("POST", delivery.url, content=body, headers=headers) as response,
        ):
            if response.is_success:
                return response.status_code, "", False
            return response.status_code, f"HTTP {response.status_code}: {head(response)}", False
    except httpx.TimeoutException:
        return None, f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s.", False
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], False


def head(response: httpx.Response) -> str:
    """The start of an answer's body, for the log (at most a few KiB are read)."""
    read = b""
    for chunk in response.iter_bytes():
        read += chunk
        if len(read) >= 4096:
            break
    text = " ".join(read.decode("utf-8", "replace").split())
    return text[:RESPONSE_KEEP] or response.reason_phrase


def record(
    delivery: WebhookDelivery,
    started: datetime,
    duration_ms: int,
    code: int | None,
    error: str,
    *,
    permanent: bool,
) -> str:
    ok = code is not None and 200 <= code < 300
    now = timezone.now()
    gave_up_at = delivery.created_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    wait = backoff_seconds(delivery.attempts)
    if ok:
        fields: dict = {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        outcome = "delivered"
    elif permanent or now + timedelta(seconds=wait) > gave_up_at:
        fields = {"status": DeliveryStatus.FAILED}
        outcome = "failed"
    else:
        fields = {"next_attempt_at": now + timedelta(seconds=wait)}
        outcome = "retrying"
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started,
            duration_ms=duration_ms,
            status_code=code,
            error=error[:500],
            succeeded=ok,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            last_status_code=code, last_error=error[:500], **fields
        )
    log = logger.info if ok else logger.warning
    log("webhook delivery %s attempt %s: %s", delivery.pk, delivery.attempts, error or code)
    return outcome


# Secrets


def secret_of(user_id) -> str:
    """The user's secret, made on first use (two first uses at once agree on one)."""
    found = WebhookSecret.objects.filter(owner_id=user_id).values_list("secret", flat=True)
    if secret := found.first():
        return secret
    try:
        with transaction.atomic():
            return WebhookSecret.objects.create(owner_id=user_id).secret
    except IntegrityError:
        return WebhookSecret.objects.get(owner_id=user_id).secret
