"""Issue 11's schedule defects, through the API, the admin and sync_schedules: each bad value is
refused naming its field, nothing is stored, partial PATCHes merge with the stored values, and
the list still answers."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from schedules import api as schedules_api
from schedules import validation
from schedules.models import ScheduleChange
from schedules.seeding import check_spec, sync_schedules

pytestmark = pytest.mark.django_db

URL = "/api/schedules/"
TOO_LONG = [
    (2_147_483_647, "days"),  # beat: OverflowError in timedelta
    (3_000_000, "days"),  # beat: OverflowError adding it to last_run_at
    (367, "days"),
    (31_622_401, "seconds"),  # 366 days and a second
]


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user(
        "ops", password="a-long-password-3", is_staff=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", password="a-long-password-4")
    client.force_login(user)
    return user


def counts() -> tuple[int, int, int, int]:
    return (
        PeriodicTask.objects.count(),
        IntervalSchedule.objects.count(),
        CrontabSchedule.objects.count(),
        ScheduleChange.objects.count(),
    )


def interval_task(every: int = 15, period: str = "seconds", **extra) -> dict:
    return {"name": "scan", "task": "runs.scan", "interval": {"every": every, "period": period}}


def crontab_task(**fields) -> dict:
    return {"name": "nightly", "task": "runs.cleanup", "crontab": fields}


def assert_list_answers(staff_api) -> None:
    response = staff_api.get(URL)
    assert response.status_code == 200, response.content
    for row in response.json()["results"]:
        assert row["problem"] is None, row


# The API


@pytest.mark.parametrize(("every", "period"), TOO_LONG)
def test_an_interval_too_long_for_beat_is_a_400_naming_every_and_stores_nothing(
    staff_api, every, period
):
    before = counts()
    response = staff_api.post(URL, interval_task(every, period), format="json")
    assert response.status_code == 400, response.content
    message = response.json()["interval"]["every"][0]
    assert "366 days" in message or "less than or equal" in message
    assert counts() == before
    assert_list_answers(staff_api)


def test_every_past_2_to_the_31_and_below_one_second_are_refused(staff_api):
    before = counts()
    for every, period in (
        (2**31, "seconds"),
        (2**40, "days"),
        (0, "seconds"),
        (999, "microseconds"),
    ):
        response = staff_api.post(URL, interval_task(every, period), format="json")
        assert response.status_code == 400, (every, period, response.content)
        assert list(response.json()["interval"]) == ["every"]
    bad_period = staff_api.post(URL, interval_task(7, ""), format="json")
    assert list(bad_period.json()["interval"]) == ["period"]
    assert counts() == before


def test_the_longest_and_shortest_intervals_are_accepted(staff_api):
    for name, every, period in (("year", 366, "days"), ("second", 1_000_000, "microseconds")):
        body = interval_task(every, period) | {"name": name}
        response = staff_api.post(URL, body, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["next_run_at"] and response.json()["problem"] is None


def test_a_crontab_for_31_february_is_a_400_naming_the_day_and_stores_nothing(staff_api):
    before = counts()
    body = crontab_task(minute="0", hour="2", day_of_month="31", month_of_year="2")
    response = staff_api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert "never occurs" in response.json()["crontab"]["day_of_month"][0]
    assert counts() == before
    assert_list_answers(staff_api)


def test_a_crontab_that_fires_only_beyond_5_years_is_refused(staff_api):
    # 29 February on a Monday: 2016, then 2044.
    rare = crontab_task(minute="0", hour="0", day_of_month="29", month_of_year="2", day_of_week="1")
    response = staff_api.post(URL, rare, format="json")
    assert response.status_code == 400
    assert "5 years" in response.json()["crontab"]["day_of_month"][0]


def test_crontab_fields_are_parsed_as_beat_parses_them(staff_api):
    for field, value in (
        ("minute", "*/0"),
        ("hour", "1-30"),
        ("day_of_week", "8"),
        ("month_of_year", "0"),
        ("minute", "1,,2"),
    ):
        response = staff_api.post(URL, crontab_task(**{field: value}), format="json")
        assert response.status_code == 400, (field, value)
        assert list(response.json()["crontab"]) == [field], response.json()
    leap_day = crontab_task(minute="0", hour="0", day_of_month="29", month_of_year="feb")
    assert staff_api.post(URL, leap_day, format="json").status_code == 201


def test_patching_only_every_keeps_the_stored_period(staff_api):
    created = staff_api.post(URL, interval_task(15, "minutes"), format="json").json()
    response = staff_api.patch(f"{URL}{created['id']}/", {"interval": {"every": 7}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["interval"] == {"every": 7, "period": "minutes"}
    task = PeriodicTask.objects.get(pk=created["id"])
    assert (task.interval.every, task.interval.period) == (7, "minutes")
    assert not IntervalSchedule.objects.filter(period="").exists()

    too_long = staff_api.patch(
        f"{URL}{created['id']}/", {"interval": {"every": 527041}}, format="json"
    )
    assert too_long.status_code == 400  # 366 days of minutes and one more
    assert "every" in too_long.json()["interval"]


def test_an_interval_without_a_period_on_a_crontab_task_is_a_400(staff_api):
    created = staff_api.post(URL, crontab_task(minute="0"), format="json").json()
    before = counts()
    response = staff_api.patch(f"{URL}{created['id']}/", {"interval": {"every": 7}}, format="json")
    assert response.status_code == 400
    assert list(response.json()["interval"]) == ["period"]
    assert counts() == before


def test_a_partial_crontab_patch_merges_with_the_stored_crontab(staff_api):
    body = crontab_task(minute="30", hour="2", day_of_week="1-5", timezone="Europe/Paris")
    created = staff_api.post(URL, body, format="json").json()
    url = f"{URL}{created['id']}/"

    response = staff_api.patch(url, {"crontab": {"hour": "4"}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["crontab"] == {
        "minute": "30",
        "hour": "4",
        "day_of_week": "1-5",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": "Europe/Paris",
    }
    # Merged, then checked as a whole: February of the stored crontab has no 31st.
    staff_api.patch(url, {"crontab": {"month_of_year": "2"}}, format="json")
    before = counts()
    response = staff_api.patch(url, {"crontab": {"day_of_month": "31"}}, format="json")
    assert response.status_code == 400
    assert "day_of_month" in response.json()["crontab"]
    assert counts() == before
    assert PeriodicTask.objects.get(pk=created["id"]).crontab.day_of_month == "*"


def test_a_partial_crontab_patch_on_an_interval_task_starts_from_the_defaults(staff_api):
    created = staff_api.post(URL, interval_task(), format="json").json()
    response = staff_api.patch(
        f"{URL}{created['id']}/", {"crontab": {"minute": "5"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["crontab"]["hour"] == "*"
    assert response.json()["crontab"]["timezone"] == "Asia/Shanghai"
    assert response.json()["interval"] is None


def test_args_kwargs_zone_and_queue_name_their_field(staff_api):
    before = counts()
    cases = {
        "kwargs": interval_task() | {"kwargs": [1, 2]},
        "args": interval_task() | {"args": {"a": 1}},
        "queue": interval_task() | {"queue": "nowhere"},
        "task": interval_task() | {"task": "runs.nope"},
    }
    for field, body in cases.items():
        response = staff_api.post(URL, body, format="json")
        assert response.status_code == 400 and field in response.json(), (field, response.json())
    zone = staff_api.post(URL, crontab_task(timezone="Mars/Olympus"), format="json")
    assert list(zone.json()["crontab"]) == ["timezone"]
    assert counts() == before


def test_a_failure_while_answering_stores_nothing(staff_api, monkeypatch):
    """Every write is one transaction with its answer: a 500 after the save stores nothing."""

    def broken(self, task):
        raise RuntimeError("a failure after the row was saved")

    monkeypatch.setattr(schedules_api.ScheduleSerializer, "get_next_run_at", broken)
    staff_api.raise_request_exception = False
    before = counts()
    assert staff_api.post(URL, interval_task(), format="json").status_code == 500
    assert counts() == before

    monkeypatch.undo()
    created = staff_api.post(URL, interval_task(), format="json").json()
    monkeypatch.setattr(schedules_api.ScheduleSerializer, "get_next_run_at", broken)
    before = counts()
    patch = {"interval": {"every": 9, "period": "seconds"}}
    assert staff_api.patch(f"{URL}{created['id']}/", patch, format="json").status_code == 500
    assert counts() == before
    assert PeriodicTask.objects.get(pk=created["id"]).interval.every == 15


# The admin


INLINE = {  # the schedule pages' inline list of the tasks using them
    "periodictask_set-TOTAL_FORMS": "0",
    "periodictask_set-INITIAL_FORMS": "0",
}


def admin_add(client, model: str, form: dict):
    return client.post(reverse(f"admin:django_celery_beat_{model}_add"), INLINE | form)


@pytest.mark.parametrize(("every", "period"), [*TOO_LONG, (0, "seconds"), (10, "microseconds")])
def test_the_admin_refuses_an_interval_beat_cannot_use(client, operator, every, period):
    before = counts()
    response = admin_add(client, "intervalschedule", {"every": every, "period": period})
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors["every"]
    assert counts() == before


def test_the_admin_accepts_the_longest_interval(client, operator):
    response = admin_add(client, "intervalschedule", {"every": 366, "period": "days"})
    assert response.status_code == 302
    assert IntervalSchedule.objects.filter(every=366, period="days").exists()


def test_the_admin_refuses_a_crontab_for_31_february_and_an_unknown_field(client, operator):
    before = counts()
    form = {
        "minute": "0",
        "hour": "2",
        "day_of_week": "*",
        "day_of_month": "31",
        "month_of_year": "2",
        "timezone": "UTC",
    }
    response = admin_add(client, "crontabschedule", form)
    assert response.status_code == 200
    assert "never occurs" in str(response.context["adminform"].form.errors["day_of_month"])
    response = admin_add(client, "crontabschedule", form | {"day_of_month": "1", "hour": "*/0"})
    assert "hour" in response.context["adminform"].form.errors
    assert counts() == before
    saved = admin_add(client, "crontabschedule", form | {"day_of_month": "28"})
    assert saved.status_code == 302, saved.context["adminform"].form.errors


def task_form(interval: IntervalSchedule, **extra) -> dict:
    return {
        "name": "admin scan",
        "regtask": "runs.scan",
        "task": "",
        "enabled": "on",
        "interval": interval.pk,
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "description": "",
        **extra,
    }


def test_the_admin_task_form_checks_args_kwargs_queue_and_task(client, operator):
    every_minute = IntervalSchedule.objects.create(every=1, period="minutes")
    before = counts()
    for field, bad in (
        ("kwargs", "[1, 2]"),
        ("args", '{"a": 1}'),
        ("headers", "[]"),
        ("queue", "nowhere"),
    ):
        response = admin_add(client, "periodictask", task_form(every_minute, **{field: bad}))
        assert response.status_code == 200, field
        assert field in response.context["adminform"].form.errors, field
    unknown = task_form(every_minute, regtask="", task="runs.nope")
    response = admin_add(client, "periodictask", unknown)
    assert "runs.nope" in str(response.context["adminform"].form.errors["task"])
    assert counts() == before
    good = task_form(every_minute, queue="system", kwargs='{"pending_grace_seconds": 5}')
    assert admin_add(client, "periodictask", good).status_code == 302


# sync_schedules


def test_sync_schedules_checks_the_defaults_and_creates_nothing_if_one_is_invalid(monkeypatch):
    from schedules import seeding

    good = seeding.defaults()
    bad = dict(good) | {
        "clean up": good["clean up"] | {"crontab": {"day_of_month": "31", "month_of_year": "2"}}
    }
    monkeypatch.setattr(seeding, "defaults", lambda: bad)
    with pytest.raises(validation.InvalidSchedule) as refused:
        sync_schedules()
    assert "clean up day_of_month" in str(refused.value)
    assert PeriodicTask.objects.count() == 0

    with pytest.raises(validation.InvalidSchedule, match="every"):
        check_spec("x", {"task": "runs.scan", "every_seconds": 0, "kwargs": {}})
    with pytest.raises(validation.InvalidSchedule, match="kwargs"):
        check_spec("x", {"task": "runs.scan", "every_seconds": 5, "kwargs": [1]})
    monkeypatch.undo()
    assert sorted(sync_schedules()) == ["check timeouts", "clean up", "scan async runs"]
    assert validation.broken_schedules() == []
