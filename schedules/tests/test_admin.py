"""The schedules admin without a browser: actions, next run times, last result, audit rows."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult

from schedules.models import ScheduleChange
from schedules.seeding import sync_schedules

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_celery_beat_periodictask_changelist")


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", password="a-long-password-4")
    client.force_login(user)
    sync_schedules()
    return user


def act(client, action: str, *names: str):
    pks = PeriodicTask.objects.filter(name__in=names).values_list("pk", flat=True)
    return client.post(CHANGELIST, {"action": action, "_selected_action": list(pks)}, follow=True)


def test_disable_and_enable_actions_are_audited_and_tell_beat(client, operator):
    stamp = PeriodicTasks.last_change()
    act(client, "disable_tasks", "clean up", "scan async runs")
    assert not PeriodicTask.objects.filter(enabled=True, name__in=["clean up", "scan async runs"])
    assert PeriodicTasks.last_change() > stamp

    act(client, "enable_tasks", "clean up")
    assert PeriodicTask.objects.get(name="clean up").enabled

    rows = ScheduleChange.objects.filter(action="changed", source="admin", actor=operator)
    changes = [
        (row.object_repr.split(":")[0], row.changes["enabled"]) for row in rows.order_by("id")
    ]
    assert changes.count(("clean up", [True, False])) == 1
    assert changes.count(("scan async runs", [True, False])) == 1
    assert changes.count(("clean up", [False, True])) == 1


def test_run_now_sends_the_task_and_records_who_asked(client, operator):
    response = act(client, "run_tasks", "scan async runs")
    assert "1 task was successfully run" in response.content.decode()
    row = ScheduleChange.objects.get(action="run now")
    assert row.actor == operator and row.changes["kwargs"]["pending_grace_seconds"] == 10


def test_the_list_works_with_a_start_time_set(client, operator):
    PeriodicTask.objects.filter(name="clean up").update(start_time="2026-01-01T00:00:00Z")
    assert client.get(CHANGELIST).status_code == 200


def test_the_change_page_shows_next_runs_in_the_schedule_zone_the_last_result_and_the_trail(
    client, operator
):
    cleanup = PeriodicTask.objects.get(name="clean up")
    TaskResult.objects.create(
        task_id="t-1",
        task_name="runs.cleanup",
        periodic_task_name="clean up",
        status="SUCCESS",
        result=json.dumps({"runs": 0}),
    )
    page = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[cleanup.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "02:00:00 Asia/Shanghai (CST, UTC+0800)" in html  # next runs, in the zone, named
    result = TaskResult.objects.get(task_id="t-1")
    assert reverse("admin:django_celery_results_taskresult_change", args=[result.pk]) in html
    assert "sync_schedules" in html  # the trail shows who created it

    listing = client.get(CHANGELIST).content.decode()
    assert "Asia/Shanghai" in listing and "SUCCESS" in listing  # times name their zone


def test_an_admin_form_edit_is_audited_with_the_user(client, operator):
    scan = PeriodicTask.objects.get(name="scan async runs")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[scan.pk])
    form = {
        "name": scan.name,
        "regtask": "runs.scan",
        "task": "",
        "enabled": "on",
        "interval": scan.interval_id,
        "args": "[]",
        "kwargs": json.dumps({"pending_grace_seconds": 30, "requeue_after_seconds": 3600}),
        "headers": "{}",
        "description": scan.description,
        "_save": "Save",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    row = ScheduleChange.objects.get(object_id=scan.pk, action="changed")
    assert row.actor == operator and row.source == "admin"
    old, new = row.changes["kwargs"]
    assert json.loads(old)["pending_grace_seconds"] == 10
    assert json.loads(new)["pending_grace_seconds"] == 30


def test_the_trail_is_read_only(client, operator):
    row = ScheduleChange.objects.first()
    listing = client.get(reverse("admin:schedules_schedulechange_changelist"))
    assert listing.status_code == 200 and "clean up" in listing.content.decode()
    page = client.get(reverse("admin:schedules_schedulechange_change", args=[row.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    delete = reverse("admin:schedules_schedulechange_delete", args=[row.pk])
    assert client.post(delete).status_code == 403
