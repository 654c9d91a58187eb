"""The staff-only schedules API: create, list, update, delete, validation, and its audit rows."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from schedules.models import ScheduleChange
from schedules.seeding import sync_schedules

pytestmark = pytest.mark.django_db

URL = "/api/schedules/"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops", password="a-long-password-3", is_staff=True)


@pytest.fixture
def staff_api(staff) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


def scan_every(seconds: int, **extra) -> dict:
    return {
        "name": "fast scan",
        "task": "runs.scan",
        "interval": {"every": seconds, "period": "seconds"},
        "kwargs": {"pending_grace_seconds": 5},
        **extra,
    }


def test_a_non_staff_user_is_refused_and_an_anonymous_one_too(api):
    assert api.get(URL).status_code == 403
    assert APIClient().get(URL).status_code == 401


def test_staff_lists_the_seeded_schedules(staff_api):
    sync_schedules()
    body = staff_api.get(URL).json()
    by_name = {row["name"]: row for row in body["results"]}
    assert by_name["scan async runs"]["interval"] == {"every": 15, "period": "seconds"}
    assert by_name["check timeouts"]["kwargs"]["timeout_minutes"] == 30
    assert by_name["clean up"]["crontab"]["hour"] == "2"
    assert by_name["clean up"]["interval"] is None
    # In Asia/Shanghai, the crontab's zone:
    assert by_name["clean up"]["next_run_at"].endswith("+08:00")


def test_creating_an_interval_schedule_stores_it_and_tells_beat(staff_api):
    before = PeriodicTasks.last_change()
    response = staff_api.post(URL, scan_every(5, queue="system"), format="json")
    assert response.status_code == 201, response.json()
    task = PeriodicTask.objects.get(name="fast scan")
    assert task.interval.every == 5 and task.crontab is None
    assert task.queue == "system"
    assert response.json()["kwargs"] == {"pending_grace_seconds": 5}
    assert PeriodicTasks.last_change() != before  # beat re-reads its schedule on this stamp


def test_a_crontab_schedule_can_be_created_and_switched_to_an_interval(staff_api):
    body = {"name": "nightly", "task": "runs.cleanup", "crontab": {"minute": "30", "hour": "*/2"}}
    created = staff_api.post(URL, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["crontab"]["minute"] == "30"

    hourly = {"interval": {"every": 1, "period": "hours"}}
    switched = staff_api.patch(f"{URL}{created.json()['id']}/", hourly, format="json")
    assert switched.status_code == 200, switched.json()
    task = PeriodicTask.objects.get(name="nightly")
    assert task.interval.every == 1 and task.crontab is None


def test_an_invalid_crontab_field_is_a_400_naming_the_field(staff_api):
    body = {"name": "bad", "task": "runs.cleanup", "crontab": {"minute": "61", "hour": "2"}}
    response = staff_api.post(URL, body, format="json")
    assert response.status_code == 400
    errors = response.json()["crontab"]
    assert list(errors) == ["minute"]
    assert "61" in errors["minute"][0]
    assert not PeriodicTask.objects.filter(name="bad").exists()


def test_an_unknown_task_is_a_400_listing_the_registered_tasks(staff_api):
    response = staff_api.post(URL, scan_every(5, task="runs.nope"), format="json")
    assert response.status_code == 400
    message = response.json()["task"][0]
    assert "runs.nope" in message
    for registered in ("runs.check_timeouts", "runs.scan", "runs.cleanup"):
        assert registered in message


def test_other_bad_input_names_its_field(staff_api):
    both = scan_every(5, crontab={"minute": "0"})
    assert set(staff_api.post(URL, both, format="json").json()) == {"interval", "crontab"}
    neither = {"name": "x", "task": "runs.scan"}
    assert "interval" in staff_api.post(URL, neither, format="json").json()
    assert "queue" in staff_api.post(URL, scan_every(5, queue="nowhere"), format="json").json()
    assert "kwargs" in staff_api.post(URL, scan_every(5, kwargs=[1]), format="json").json()
    bad_zone = {"name": "z", "task": "runs.scan", "crontab": {"timezone": "Mars/Olympus"}}
    assert "timezone" in staff_api.post(URL, bad_zone, format="json").json()["crontab"]


def test_api_edits_leave_audit_rows_naming_the_user_and_the_change(staff_api, staff):
    created = staff_api.post(URL, scan_every(5), format="json").json()
    staff_api.patch(f"{URL}{created['id']}/", {"enabled": False, "kwargs": {}}, format="json")
    staff_api.patch(
        f"{URL}{created['id']}/", {"interval": {"every": 2, "period": "seconds"}}, format="json"
    )
    assert staff_api.delete(f"{URL}{created['id']}/").status_code == 204

    trail = ScheduleChange.objects.filter(object_type="periodictask", object_id=created["id"])
    actions = list(trail.order_by("id").values_list("action", flat=True))
    assert actions == ["created", "changed", "changed", "deleted"]
    assert {row.actor_id for row in trail} == {staff.pk}
    assert {row.source for row in trail} == {"api"}
    disabled, moved = trail.filter(action="changed").order_by("id")
    assert disabled.changes["enabled"] == [True, False]
    assert disabled.changes["kwargs"] == ['{"pending_grace_seconds": 5}', "{}"]
    assert moved.changes["interval"] == ["every 5 seconds", "every 2 seconds"]


def test_seeding_creates_only_what_is_missing_and_keeps_edits(staff_api):
    assert sorted(sync_schedules()) == ["check timeouts", "clean up", "scan async runs"]
    scan = PeriodicTask.objects.get(name="scan async runs")
    three_seconds = {"interval": {"every": 3, "period": "seconds"}}
    staff_api.patch(f"{URL}{scan.pk}/", three_seconds, format="json")
    PeriodicTask.objects.get(name="clean up").delete()

    assert sync_schedules() == ["clean up"]
    assert PeriodicTask.objects.get(name="scan async runs").interval.every == 3
