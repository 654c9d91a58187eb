"""Real beat processes and test schedules for the schedule tests."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_results.models import TaskResult

from ops.commandline import beat_command
from runs.tests.helpers import ServiceProcess, service_env
from schedules.beat import LEASE_NAME
from schedules.models import BeatLease


def start_beat(broker_url: str, name: str = "beat", **env: str) -> ServiceProcess:
    """A real beat as run_celery.py starts it, with no pid file and a schedule file of its own, so
    two of them can run side by side on the test database."""
    schedule_file = tempfile.mkstemp(prefix="beat-schedule-")[1]
    command = beat_command(extra=("--pidfile=", "--schedule", schedule_file))
    beat = ServiceProcess(command, service_env(CELERY_BROKER_URL=broker_url, **env), name)
    beat.wait_until_logged("beat: Starting", f"{name} to start")
    return beat


def leader_pid() -> int | None:
    row = BeatLease.objects.filter(name=LEASE_NAME).first()
    return int(row.holder.split(":")[1]) if row else None


def every(seconds: int, period: str = IntervalSchedule.SECONDS) -> IntervalSchedule:
    return IntervalSchedule.objects.get_or_create(every=seconds, period=period)[0]


def tick_schedule(name: str, seconds: int, task: str = "runs.scan", **kwargs) -> PeriodicTask:
    return PeriodicTask.objects.create(
        name=name, task=task, interval=every(seconds), kwargs=json.dumps(kwargs)
    )


def executions(name: str) -> list:
    """When each execution fired by the schedule `name` finished, oldest first."""
    rows = TaskResult.objects.filter(periodic_task_name=name, status="SUCCESS")
    return list(rows.order_by("date_done").values_list("date_done", flat=True))


def sends(beat: ServiceProcess, name: str) -> int:
    return beat.log().count(f"Sending due task {name} ")


def send_times(beat: ServiceProcess, name: str) -> list[datetime]:
    """When the beat sent each firing of `name`, from the timestamps of its log lines."""
    stamps = re.findall(
        rf"^(\S+ \S+) INFO celery.beat: Scheduler: Sending due task {name} ",
        beat.log(),
        re.MULTILINE,
    )
    zone = ZoneInfo(settings.TIME_ZONE)  # Django sets the process's local time to TIME_ZONE
    return [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=zone) for stamp in stamps
    ]


def insert_row(model, **values) -> int:
    """A row written with raw SQL, around every form and serializer (as an older version or a
    hand-written fix might have); returns its id."""
    names = ", ".join(connection.ops.quote_name(name) for name in values)
    marks = ", ".join(["%s"] * len(values))
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(values.values()))
        return int(cursor.lastrowid)


def raw_interval(every: int, period: str) -> int:
    return insert_row(IntervalSchedule, every=every, period=period)


def raw_crontab(**fields: str) -> int:
    stars = dict.fromkeys(("hour", "day_of_week", "day_of_month", "month_of_year"), "*")
    return insert_row(CrontabSchedule, **(stars | {"minute": "0", "timezone": "UTC"} | fields))


def raw_task(
    name: str,
    *,
    interval: int | None = None,
    crontab: int | None = None,
    task: str = "runs.scan",
    args: str = "[]",
    kwargs: str = "{}",
    enabled: bool = True,
    last_run_at: str | None = None,
) -> int:
    """An enabled periodic task inserted with raw SQL; beat is told, as after any write."""
    pk = insert_row(
        PeriodicTask,
        name=name,
        task=task,
        interval_id=interval,
        crontab_id=crontab,
        args=args,
        kwargs=kwargs,
        headers="{}",
        one_off=False,
        enabled=enabled,
        last_run_at=last_run_at,
        total_run_count=0,
        date_changed=timezone.now(),
        description="",
    )
    PeriodicTasks.update_changed()
    return pk


def bad_rows() -> dict[str, str]:
    """One enabled task of each kind beat cannot fire, by name → a word its reason contains."""
    every_second = every(1).pk
    rows = {
        "bad overflow": (raw_interval(2_147_483_647, "days"), None, "[]", "{}", "366 days"),
        "bad far": (raw_interval(3_000_000, "days"), None, "[]", "{}", "366 days"),
        "bad zero": (raw_interval(0, "seconds"), None, "[]", "{}", "at least 1"),
        "bad period": (raw_interval(7, ""), None, "[]", "{}", "Unknown period"),
        "bad feb 31": (None, raw_crontab(day_of_month="31", month_of_year="2"), "[]", "{}", "31"),
        "bad zone": (None, raw_crontab(timezone="Mars/Olympus"), "[]", "{}", "Mars/Olympus"),
        "bad hour": (None, raw_crontab(hour="25"), "[]", "{}", "hour"),
        "bad kwargs": (every_second, None, "[]", "{not json", "JSON"),
        "bad kwargs list": (every_second, None, "[]", "[1, 2]", "object"),
        "bad args": (every_second, None, '{"a": 1}', "{}", "array"),
    }
    for name, (interval, crontab, args, kwargs, _) in rows.items():
        raw_task(name, interval=interval, crontab=crontab, args=args, kwargs=kwargs)
    # Beat would add the interval to this and overflow.
    raw_task("bad last run", interval=every(1, "days").pk, last_run_at="9999-12-31 00:00:00")
    return {name: row[-1] for name, row in rows.items()} | {"bad last run": "9999"}
