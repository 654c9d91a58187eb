"""Completion webhooks with a real worker, database, Redis and an HTTP receiver on loopback."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs import maintenance
from runs.models import RunStatus
from runs.signals import changed
from runs.tests.helpers import wait_for
from runs.tests.sleeper.models import SleepRun
from webhooks import delivery, signing
from webhooks.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True)]

RUNS = "/api/test/sleep-runs/"


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def secret(api) -> str:
    return api.get("/api/webhook-secret/").json()["secret"]


def finished(api, run_id) -> dict:
    def poll():
        body = api.get(f"{RUNS}{run_id}/").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None

    return wait_for(poll, timeout=60, what="the run to finish")


def delivered(run_id):
    return wait_for(
        lambda: WebhookDelivery.objects.filter(
            run_id=run_id, status=DeliveryStatus.DELIVERED
        ).first(),
        timeout=60,
        what="the delivery to be recorded",
    )


@pytest.mark.usefixtures("celery_worker")
def test_a_receiver_gets_exactly_one_verified_delivery_per_run(api, receiver):
    key = secret(api)
    ids = [
        api.post(RUNS, {"steps": 1, "callback_url": receiver.url}, format="json").json()["id"],
        api.post(RUNS, {"steps": 2, "callback_url": receiver.url}, format="json").json()["id"],
    ]
    for run_id in ids:
        finished(api, run_id)
        delivered(run_id)

    got = receiver.got()
    bodies = [json.loads(r.body) for r in got]
    assert sorted(b["id"] for b in bodies) == sorted(ids)  # one each
    for request in got:
        assert signing.verify(key, request.body, request.headers["X-Signature"])
        assert not signing.verify("another secret", request.body, request.headers["X-Signature"])
        assert request.headers["Content-Type"] == "application/json"
    body = next(b for b in bodies if b["id"] == ids[0])
    assert body["status"] == "succeeded" and body["kind"] == "sleep"
    assert body["progress"] == 100 and body["finished_at"]
    assert body["url"].endswith(f"{RUNS}{ids[0]}/")

    # Idempotent: the same ending signalled again, a redelivered message, another scan.
    run = SleepRun.objects.get(pk=ids[0])
    changed(SleepRun, [run], RunStatus.SUCCEEDED, from_status=RunStatus.RUNNING)
    row = WebhookDelivery.objects.get(run_id=ids[0])
    assert delivery.deliver(row.pk, row.token or "an old token") == "not claimed"
    assert delivery.send_due() == 0
    assert WebhookDelivery.objects.filter(run_id=ids[0]).count() == 1
    assert row.log.count() == 1
    assert len(receiver.got()) == 2

    listed = api.get(f"{RUNS}{ids[0]}/deliveries/")
    assert listed.status_code == 200
    [entry] = listed.json()["results"]
    assert entry["status"] == "delivered" and entry["run_status"] == "succeeded"
    assert [(a["number"], a["status_code"], a["succeeded"]) for a in entry["attempts"]] == [
        (1, 200, True)
    ]


@pytest.mark.usefixtures("celery_worker")
def test_a_failing_receiver_gets_logged_retries_then_one_success(api, receiver, admin_client):
    receiver.codes = [500, 503]
    key = secret(api)
    run_id = api.post(RUNS, {"steps": 1, "callback_url": receiver.url}, format="json").json()["id"]
    finished(api, run_id)

    def two_failures():
        return DeliveryAttempt.objects.filter(delivery__run_id=run_id).count() >= 2

    # Each retry is sent by the scan once its backoff has passed (10 s, then 20 s).
    def scan_until(done):
        maintenance.scan()
        return done()

    wait_for(lambda: scan_until(two_failures), timeout=90, interval=1, what="two failures")
    wait_for(
        lambda: scan_until(
            lambda: WebhookDelivery.objects.filter(
                run_id=run_id, status=DeliveryStatus.DELIVERED
            ).exists()
        ),
        timeout=120,
        interval=1,
        what="the third attempt to succeed",
    )

    row = WebhookDelivery.objects.get(run_id=run_id)
    log = list(row.log.values_list("number", "status_code", "succeeded"))
    assert log == [(1, 500, False), (2, 503, False), (3, 200, True)]
    assert "receiver is down" in row.log.get(number=1).error
    got = receiver.got()
    assert [r.answered for r in got] == [500, 503, 200]
    assert len({r.body for r in got}) == 1  # the same body each time, signed afresh
    assert all(signing.verify(key, r.body, r.headers["X-Signature"]) for r in got)
    assert {r.headers["X-Webhook-Id"] for r in got} == {str(row.pk)}
    assert [r.headers["X-Webhook-Attempt"] for r in got] == ["1", "2", "3"]
    # Delivered: later scans send nothing more.
    assert delivery.send_due() == 0

    listed = api.get(f"{RUNS}{run_id}/deliveries/").json()["results"]
    assert [a["status_code"] for a in listed[0]["attempts"]] == [500, 503, 200]
    assert listed[0]["attempt_count"] == 3

    page = admin_client.get("/admin/webhooks/webhookdelivery/?status__exact=delivered")
    assert page.status_code == 200 and run_id in page.content.decode()
    assert admin_client.get(f"/admin/webhooks/webhookdelivery/{row.pk}/change/").status_code == 200
    empty = admin_client.get("/admin/webhooks/webhookdelivery/?status__exact=failed")
    assert run_id not in empty.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_addresses_are_refused_without_the_setting(api, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    reply = api.post(RUNS, {"steps": 1, "callback_url": url}, format="json")
    assert reply.status_code == 400
    assert list(reply.json()) == ["callback_url"]
    assert SleepRun.objects.count() == 0


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "not a url", "http://", 42, "http://x.test/" + "a" * 2000]
)
def test_callback_urls_must_be_http_urls(api, url):
    reply = api.post(RUNS, {"steps": 1, "callback_url": url}, format="json")
    assert reply.status_code == 400
    assert list(reply.json()) == ["callback_url"]


def test_a_private_address_is_refused_at_delivery_time_too(user, settings, receiver):
    """DNS may change after the create check: each POST checks again, and gives up at once."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    row = WebhookDelivery.objects.create(
        owner=user,
        run_kind="sleeper.sleeprun",
        run_id=uuid.uuid4(),
        run_attempt=1,
        run_status="succeeded",
        url=receiver.url,
        body="{}",
        next_attempt_at=delivery.timezone.now(),
        token="t1",
    )
    assert delivery.deliver(row.pk, "t1") == "failed"
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED
    assert "private" in row.log.get().error
    assert receiver.got() == []


def test_the_secret_is_shown_to_its_user_and_rotated(api, other_user):
    first = api.get("/api/webhook-secret/").json()
    assert len(first["secret"]) == 64 and first["rotated_at"] is None
    assert api.get("/api/webhook-secret/").json()["secret"] == first["secret"]

    rotated = api.post("/api/webhook-secret/").json()
    assert rotated["secret"] != first["secret"] and rotated["rotated_at"]
    assert delivery.secret_of(other_user.pk) not in (first["secret"], rotated["secret"])


def test_deliveries_follow_the_runs_ownership(api, other_user):
    theirs = SleepRun.objects.create(owner=other_user, status=RunStatus.SUCCEEDED)
    assert api.get(f"{RUNS}{theirs.pk}/deliveries/").status_code == 404
    assert api.get(f"/api/nothing/{theirs.pk}/deliveries/").status_code == 404
    mine = api.post(RUNS, {"steps": 1, "delay_seconds": 600}, format="json").json()["id"]
    assert api.get(f"{RUNS}{mine}/deliveries/").json() == {
        "next": None,
        "previous": None,
        "results": [],
    }


def test_a_runs_deliveries_come_in_cursor_pages_newest_first(api, user):
    run = SleepRun.objects.create(owner=user, status=RunStatus.SUCCEEDED)
    for attempt in (1, 2, 3):
        made = WebhookDelivery.objects.create(
            owner=user,
            run_kind=SleepRun._meta.label_lower,
            run_id=run.pk,
            run_attempt=attempt,
            run_status=RunStatus.SUCCEEDED,
            url="https://example.com/hook",
            body="{}",
            next_attempt_at=timezone.now(),
        )
        # Distinct times, so the order does not rest on ids.
        WebhookDelivery.objects.filter(pk=made.pk).update(
            created_at=timezone.now() + timedelta(seconds=attempt)
        )
    first = api.get(f"{RUNS}{run.pk}/deliveries/?page_size=2").json()
    assert [d["run_attempt"] for d in first["results"]] == [3, 2]
    second = api.get(first["next"]).json()
    assert [d["run_attempt"] for d in second["results"]] == [1]
    assert second["next"] is None
    bad = api.get(f"{RUNS}{run.pk}/deliveries/?page_size=0")
    assert bad.status_code == 400 and "page_size" in bad.json()


def test_a_signature_is_refused_when_old_or_altered():
    body = b'{"id": "x"}'
    value = signing.header("k", body, timestamp=1_000_000_000)
    assert not signing.verify("k", body, value)  # from 2001: a replay
    fresh = signing.header("k", body)
    assert signing.verify("k", body, fresh)
    assert not signing.verify("k", body + b" ", fresh)
    assert not signing.verify("k", body, "v1=abc")
