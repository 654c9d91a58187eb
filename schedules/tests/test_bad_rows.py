"""Rows written around the validation (raw SQL, an older version): the lists still answer and say
"invalid: <reason>", health names them, and a real beat logs and skips them while it keeps
firing the good schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ops.health import health_cache
from ops.testing import wait_for
from schedules.beat import BROKEN_RETRY_SECONDS, LeaderEntry
from schedules.seeding import sync_schedules
from schedules.tests.helpers import (
    bad_rows,
    raw_crontab,
    raw_interval,
    raw_task,
    sends,
    start_beat,
    tick_schedule,
)
from schedules.validation import broken_schedules

URL = "/api/schedules/"
TICK = "good tick"


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user("ops", password="long-password-3", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


@pytest.mark.django_db
def test_the_api_list_answers_and_says_why_each_bad_row_is_invalid(staff_api):
    sync_schedules()
    reasons = bad_rows()
    response = staff_api.get(URL, {"page_size": 100})
    assert response.status_code == 200, response.content
    rows = {row["name"]: row for row in response.json()["results"]}
    for name, word in reasons.items():
        assert rows[name]["problem"].startswith("invalid: "), rows[name]
        assert word in rows[name]["problem"], (name, rows[name]["problem"])
        assert rows[name]["next_run_at"] is None
    assert rows["bad zone"]["crontab"]["timezone"] == "Mars/Olympus"
    assert rows["bad kwargs"]["kwargs"] == "{not json"  # shown as stored
    assert rows["scan async runs"]["problem"] is None and rows["scan async runs"]["next_run_at"]

    for name in ("bad zone", "bad overflow"):
        one = staff_api.get(f"{URL}{PeriodicTask.objects.get(name=name).pk}/")
        assert one.status_code == 200 and one.json()["problem"]


@pytest.mark.django_db
def test_a_bad_row_must_be_replaced_to_stay_enabled_and_can_be_disabled(staff_api):
    pk = raw_task("bad overflow", interval=raw_interval(2_147_483_647, "days"))
    url = f"{URL}{pk}/"
    kept = staff_api.patch(url, {"description": "still broken"}, format="json")
    assert kept.status_code == 400 and "interval" in kept.json()
    assert staff_api.patch(url, {"enabled": False}, format="json").status_code == 200
    fixed = staff_api.patch(
        url, {"enabled": True, "interval": {"every": 2, "period": "days"}}, format="json"
    )
    assert fixed.status_code == 200, fixed.content
    assert fixed.json()["problem"] is None and fixed.json()["next_run_at"]

    zone = raw_task("bad zone", crontab=raw_crontab(timezone="Mars/Olympus"))
    fixed = staff_api.patch(f"{URL}{zone}/", {"crontab": {"timezone": "UTC"}}, format="json")
    assert fixed.status_code == 200, fixed.content
    assert fixed.json()["crontab"]["timezone"] == "UTC" and fixed.json()["problem"] is None
    assert staff_api.delete(f"{URL}{pk}/").status_code == 204


@pytest.mark.django_db
def test_the_admin_lists_answer_and_mark_the_bad_rows(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", password="long-pass-5"))
    sync_schedules()
    reasons = bad_rows()
    listing = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert html.count("invalid: ") >= len(reasons)
    assert "Mars/Olympus" in html

    crontabs = client.get(reverse("admin:django_celery_beat_crontabschedule_changelist"))
    assert crontabs.status_code == 200 and "invalid: " in crontabs.content.decode()

    zone = PeriodicTask.objects.get(name="bad zone")
    page = client.get(reverse("admin:django_celery_beat_periodictask_change", args=[zone.pk]))
    assert page.status_code == 200
    assert "invalid: " in page.content.decode()

    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    broken = PeriodicTask.objects.filter(name__in=list(reasons))
    broken.update(enabled=False)
    answer = client.post(
        changelist,
        {"action": "enable_tasks", "_selected_action": list(broken.values_list("pk", flat=True))},
        follow=True,
    )
    assert "Not enabled (invalid)" in answer.content.decode()
    assert not PeriodicTask.objects.filter(name__in=list(reasons), enabled=True).exists()


@pytest.mark.django_db
def test_a_crontab_with_an_unknown_zone_can_be_fixed_in_the_admin(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", password="long-pass-6"))
    cron = raw_crontab(minute="15", hour="3", timezone="Mars/Olympus")
    task = raw_task("bad zone", crontab=cron)
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[cron])
    page = client.get(url)
    assert page.status_code == 200 and "bad zone" in page.content.decode()
    form = {
        "minute": "15",
        "hour": "3",
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": "Europe/Paris",
        "periodictask_set-TOTAL_FORMS": "0",
        "periodictask_set-INITIAL_FORMS": "0",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert str(PeriodicTask.objects.get(pk=task).crontab.timezone) == "Europe/Paris"
    assert broken_schedules() == []


@pytest.mark.django_db
def test_broken_schedules_names_each_enabled_bad_row_and_its_reason():
    sync_schedules()
    reasons = bad_rows()
    raw_task("bad but disabled", interval=raw_interval(0, "seconds"), enabled=False)
    broken = broken_schedules()
    assert [line.split(":")[0] for line in broken] == sorted(reasons)
    for line in broken:
        name = line.split(":")[0]
        assert reasons[name] in line, line


@pytest.mark.django_db
def test_an_entry_whose_next_run_overflows_waits_instead_of_stopping_beat(caplog):
    task = tick_schedule("late", 366)
    task.interval.period = "days"
    task.last_run_at = datetime(9999, 12, 31, tzinfo=UTC)
    entry = LeaderEntry(task)
    assert tuple(entry.is_due()) == (False, BROKEN_RETRY_SECONDS)
    assert "cannot compute the next run of schedule 'late'" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_real_beat_skips_bad_rows_whatever_wrote_them_and_keeps_firing(broker_url):
    reasons = bad_rows()
    tick_schedule(TICK, 1)
    beat = start_beat(broker_url)
    try:
        wait_for(
            lambda: sends(beat, TICK) >= 3 or beat.process.poll() is not None,
            timeout=60,
            what="the good schedule to fire",
        )
        assert sends(beat, TICK) >= 3, beat.log()[-5000:]
        log = beat.log()
        for name in reasons:
            assert f"beat skips schedule {name!r}" in log, name
            assert f"Sending due task {name} " not in log, name
        assert "Traceback" not in log

        # A bad row arriving while beat runs: beat re-reads the schedule, skips it, goes on.
        fired = sends(beat, TICK)
        raw_task("bad later", interval=raw_interval(2_147_483_647, "days"))
        wait_for(
            lambda: "beat skips schedule 'bad later'" in beat.log(),
            timeout=30,
            what="beat to re-read the schedule",
        )
        wait_for(lambda: sends(beat, TICK) >= fired + 3, timeout=30, what="more good firings")
        assert beat.process.poll() is None, "beat exited"
    finally:
        beat.stop()


def health(client) -> dict:
    health_cache.clear()
    return client.get("/api/health/").json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_health_names_a_broken_schedule_and_is_degraded_while_it_exists(client, broker_url):
    beat = start_beat(broker_url)
    try:
        wait_for(lambda: health(client)["status"] == "healthy", timeout=60, what="healthy")
        assert health(client)["schedules"] == {"broken": []}

        raw_task("nightly", crontab=raw_crontab(day_of_month="31", month_of_year="2"))
        report = health(client)
        assert report["status"] == "degraded"
        assert report["schedules"]["broken"] == ["nightly"]  # the reason is for staff only
        assert broken_schedules() == [
            "nightly: crontab: day_of_month '31' never occurs in month_of_year '2'."
        ]
        assert report["beat"]["status"] == "ok"  # beat skipped it and goes on

        PeriodicTask.objects.filter(name="nightly").delete()
        wait_for(lambda: health(client)["status"] == "healthy", timeout=30, what="healthy again")
    finally:
        beat.stop()
