"""The API every run kind shares, through the test-only sleeper kind and a real worker."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from runs.models import RunStatus
from runs.tests.helpers import wait_for
from runs.tests.sleeper.models import SleepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

RUNS = "/api/test/sleep-runs/"


def finished(api, run_id):
    def poll():
        body = api.get(f"{RUNS}{run_id}/").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None

    return wait_for(poll, timeout=30, what="the run to finish")


def test_submitting_answers_202_and_the_run_succeeds(api):
    reply = api.post(RUNS, {"steps": 2}, format="json")

    assert reply.status_code == 202
    body = reply.json()
    assert body["status"] in ("pending", "queued", "running")
    assert body["url"].endswith(f"{RUNS}{body['id']}/")
    assert reply["Location"] == body["url"]
    assert finished(api, body["id"])["status"] == "succeeded"


def test_unauthenticated_requests_get_401():
    client = APIClient()
    assert client.get(RUNS).status_code == 401
    assert client.post(RUNS, {"steps": 1}, format="json").status_code == 401


def test_bad_input_names_the_field(api):
    reply = api.post(RUNS, {"steps": "many", "priority": "urgent"}, format="json")

    assert reply.status_code == 400
    assert set(reply.json()) == {"steps", "priority"}
    assert SleepRun.objects.count() == 0


def test_the_same_idempotency_key_and_body_make_one_run(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = api.post(RUNS, {"steps": 1}, format="json", **headers)
    second = api.post(RUNS, {"steps": 1}, format="json", **headers)

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert SleepRun.objects.count() == 1


def test_the_same_idempotency_key_with_another_body_is_422(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-43"}
    api.post(RUNS, {"steps": 1}, format="json", **headers)
    reply = api.post(RUNS, {"steps": 2}, format="json", **headers)

    assert reply.status_code == 422
    assert "Idempotency-Key" in reply.json()
    assert SleepRun.objects.count() == 1


def test_idempotency_keys_belong_to_their_owner(api, other_user):
    other = APIClient()
    other.force_authenticate(other_user)
    mine = api.post(RUNS, {"steps": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = other.post(RUNS, {"steps": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert mine.json()["id"] != theirs.json()["id"]


def test_a_user_sees_only_their_own_runs_and_staff_see_all(api, other_user, django_user_model):
    run = SleepRun.objects.create(owner=other_user, status=RunStatus.SUCCEEDED)
    staff = django_user_model.objects.create_user(
        "carol", password="x-long-password", is_staff=True
    )
    staff_client = APIClient()
    staff_client.force_authenticate(staff)

    assert api.get(f"{RUNS}{run.pk}/").status_code == 404
    assert api.post(f"{RUNS}{run.pk}/cancel/").status_code == 404
    assert len(api.get(RUNS).json()["results"]) == 0
    assert staff_client.get(f"{RUNS}{run.pk}/").status_code == 200
    assert len(staff_client.get(RUNS).json()["results"]) == 1


def test_the_list_filters_by_status_and_date_and_rejects_bad_filters(api, user):
    SleepRun.objects.create(owner=user, status=RunStatus.SUCCEEDED)
    SleepRun.objects.create(owner=user, status=RunStatus.FAILED)

    assert len(api.get(RUNS, {"status": "failed"}).json()["results"]) == 1
    assert len(api.get(RUNS, {"status": "failed,succeeded"}).json()["results"]) == 2
    assert len(api.get(RUNS, {"created_after": "2000-01-01"}).json()["results"]) == 2
    assert len(api.get(RUNS, {"created_before": "2000-01-01T00:00:00Z"}).json()["results"]) == 0
    bad = api.get(RUNS, {"status": "done", "created_after": "yesterday"})
    assert bad.status_code == 400
    assert set(bad.json()) == {"status", "created_after"}


def test_cancel_and_retry_through_the_api(api, user):
    run = SleepRun.objects.create(
        owner=user, steps=40, seconds_per_step=0.25, status=RunStatus.QUEUED
    )
    assert api.post(f"{RUNS}{run.pk}/retry/").status_code == 409

    assert api.post(f"{RUNS}{run.pk}/cancel/").status_code == 202
    assert api.get(f"{RUNS}{run.pk}/").json()["status"] == "cancelled"
    assert api.post(f"{RUNS}{run.pk}/cancel/").status_code == 409

    SleepRun.objects.filter(pk=run.pk).update(steps=1, seconds_per_step=0)
    assert api.post(f"{RUNS}{run.pk}/retry/").status_code == 202
    assert finished(api, run.pk)["status"] == "succeeded"
