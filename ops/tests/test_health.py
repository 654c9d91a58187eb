"""Health, task status and metrics endpoints, against real services."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from celery import current_app
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ops.health import health_cache
from ops.testing import RedisServer, start_beat, start_web, start_worker, wait_for
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db(transaction=True)


def health(base: str) -> httpx.Response:
    return httpx.get(f"{base}/api/health/", timeout=10)


def health_is(base: str, status: str) -> httpx.Response | None:
    response = health(base)
    return response if response.json()["status"] == status else None


def test_health_is_degraded_then_healthy_then_unhealthy_as_services_come_and_go():
    broker = RedisServer().start()
    web, base = start_web(broker.url)
    worker = beat = None
    try:
        first = health(base)  # the broker answers, but no worker and no beat yet
        assert first.status_code == 200
        assert first.json()["status"] == "degraded"
        assert first.json()["database"] == "ok" and first.json()["broker"] == "ok"
        assert first.json()["workers"] == 0
        assert first.json()["beat"]["status"] == "never"

        worker = start_worker(broker.url, concurrency=1)
        beat = start_beat(broker.url)
        healthy = wait_for(lambda: health_is(base, "healthy"), timeout=60, what="healthy")
        assert healthy.status_code == 200
        assert healthy.json()["workers"] == 1
        assert healthy.json()["beat"]["status"] == "ok" and healthy.json()["beat"]["last_tick"]

        broker.stop()
        down = wait_for(lambda: health_is(base, "unhealthy"), timeout=30, what="unhealthy")
        assert down.status_code == 503
        assert down.json()["broker"] == "unreachable"
        assert down.json()["database"] == "ok"
    finally:
        for process in (beat, worker, web):
            if process:
                process.stop()
        broker.stop()


def test_health_needs_no_login_and_answers_from_a_cache_for_a_few_seconds():
    health_cache.clear()
    client = APIClient()
    first = client.get("/api/health/")
    second = client.get("/api/health/")
    assert first.status_code in (200, 503)
    assert set(first.json()) >= {"status", "database", "broker", "workers", "beat"}
    assert second.json()["checked_at"] == first.json()["checked_at"]


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user("ops", password="x-long-password", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


def finished_task(name: str, **kwargs) -> str:
    result = current_app.send_task(name, kwargs=kwargs)
    wait_for(lambda: result.ready(), timeout=60, what=f"{name} to finish")
    return result.id


@pytest.mark.usefixtures("celery_worker")
def test_task_status_shows_a_maintenance_task_result_and_a_failure(staff_api):
    succeeded = staff_api.get(f"/api/tasks/{finished_task('runs.scan')}/")
    assert succeeded.status_code == 200
    body = succeeded.json()
    assert body["state"] == body["status"] == "SUCCESS"
    assert body["ready"] is True and body["successful"] is True
    assert set(body["result"]) >= {"dispatched", "polled", "requeued"}  # the scan's counts
    assert body["error"] is None

    failed = staff_api.get(f"/api/tasks/{finished_task('runs.scan', bogus=1)}/").json()
    assert failed["state"] == "FAILURE" and failed["successful"] is False
    assert failed["result"] is None
    assert failed["error"].startswith("TypeError") and "bogus" in failed["error"]


def test_a_user_sees_only_the_tasks_of_their_own_runs(api, user, other_user):
    mine = SleepRun.objects.create(owner=user, task_id="7b0d5e1c-mine")
    theirs = SleepRun.objects.create(owner=other_user, task_id="7b0d5e1c-theirs")

    own = api.get(f"/api/tasks/{mine.task_id}/")
    assert own.status_code == 200
    assert own.json()["state"] == "PENDING" and own.json()["ready"] is False
    assert api.get(f"/api/tasks/{theirs.task_id}/").status_code == 404
    assert APIClient().get(f"/api/tasks/{mine.task_id}/").status_code == 401
    bad = api.get("/api/tasks/not%20an%20id/")
    assert bad.status_code == 400 and "task_id" in bad.json()


def make_finished(user, status: RunStatus, seconds: float) -> SleepRun:
    started = timezone.now() - timedelta(minutes=5)
    return SleepRun.objects.create(
        owner=user,
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
    )


def bucket(status: str, le: str) -> str:
    labels = f'kind="sleeper.sleeprun",le="{le}",status="{status}"'
    return f"mediaruns_run_duration_seconds_bucket{{{labels}}}"


def test_metrics_count_runs_by_kind_and_status_with_duration_buckets(staff_api, user):
    make_finished(user, RunStatus.SUCCEEDED, 3)
    make_finished(user, RunStatus.SUCCEEDED, 40)
    make_finished(user, RunStatus.FAILED, 0.5)
    SleepRun.objects.create(owner=user)  # pending: counted, but has no duration

    response = staff_api.get("/api/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    labels = 'kind="sleeper.sleeprun",status="succeeded"'
    assert f"mediaruns_runs{{{labels}}} 2.0" in text
    assert 'mediaruns_runs{kind="sleeper.sleeprun",status="pending"} 1.0' in text
    assert f"{bucket('succeeded', '1.0')} 0.0" in text
    assert f"{bucket('succeeded', '5.0')} 1.0" in text
    assert f"{bucket('succeeded', '60.0')} 2.0" in text
    assert f"{bucket('succeeded', '+Inf')} 2.0" in text
    assert f"{bucket('failed', '1.0')} 1.0" in text
    assert f"mediaruns_run_duration_seconds_count{{{labels}}} 2.0" in text
    assert f"mediaruns_run_duration_seconds_sum{{{labels}}} 43.0" in text


def test_metrics_need_staff_or_the_metrics_token(api, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert APIClient().get("/api/metrics").status_code == 401
    assert api.get("/api/metrics").status_code == 403  # logged in, but not staff
    wrong = APIClient(HTTP_AUTHORIZATION="Bearer guess")
    assert wrong.get("/api/metrics").status_code in (401, 403)
    scraper = APIClient(HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert scraper.get("/api/metrics").status_code == 200
