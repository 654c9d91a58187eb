"""Real beat processes and test schedules for the schedule tests."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from runs.beat import LEASE_NAME
from runs.models import BeatLease
from runs.tests.helpers import PYTHON, ServiceProcess, service_env, wait_for

SCHEDULER = "runs.beat:LeaderScheduler"


def start_beat(broker_url: str, name: str = "beat", **env: str) -> ServiceProcess:
    """A real `celery beat` with the leased DatabaseScheduler, on the test database."""
    schedule_file = tempfile.mkstemp(prefix="beat-schedule-")[1]
    beat = ServiceProcess(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "web",
            "beat",
            "-S",
            SCHEDULER,
            "--loglevel",
            "INFO",
            "--pidfile=",
            "--schedule",
            schedule_file,
        ],
        service_env(CELERY_BROKER_URL=broker_url, **env),
        name,
    )
    wait_for(
        lambda: "beat: Starting" in beat.log() or beat.process.poll() is not None,
        timeout=60,
        what=f"{name} to start",
    )
    if beat.process.poll() is not None:
        raise AssertionError(f"{name} exited:\n{beat.log()[-3000:]}")
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
