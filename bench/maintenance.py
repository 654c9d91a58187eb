#!/usr/bin/env python
"""Wall time of each maintenance task on a 1,000,000-row runs table, with and without its indexes.

The sleeper kind's table is filled with N finished runs (fast: one batch, then INSERT ... SELECT
doubling). Before each task the rows that need work are put back (the last task moved or deleted
them): pending, lost queued, waiting, stale and timed-out runs, and finished runs past retention,
in two mixes: about a hundred (the issue's baseline) and a few hundred (after an outage). Then the
real task runs (runs.maintenance.check_timeouts, scan, cleanup) and the bench takes its wall time,
the process's CPU time, the time spent in the database (every statement and COMMIT), the
statement count and the broker publishes. Medians over the rounds.

Phase 2 drops the project's maintenance indexes (ALTER TABLE ... DROP INDEX), measures the same
tasks again and restores the indexes, so the comparison is the same code without its indexes.

    .venv/bin/python bench/maintenance.py [--rows 1000000] [--rounds 5] [--keep]

Environment: DATABASE_URL (default a bench_maint database on the local MariaDB, created, migrated
and dropped at the end unless --keep) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/13,
flushed before each task and at the end: no worker consumes the messages the tasks send).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

from common import configure, database_name, mysql, prepare_database

configure(
    "bench_maint",
    broker_db=13,
    EXTRA_APPS="runs.tests.sleeper",
    MEDIA_ROOT=tempfile.mkdtemp(prefix="bench-maint-media-"),
)
DB_NAME = database_name()
TARGET_MS = 50

# Rows that need work, put back before each task, among the finished millions. "steady" is the
# mix of the baseline (a pass in ordinary times); "outage" is a few hundred at once, as
# after a broker outage or a worker crash.
MIXES = {
    "steady": {"stale": 20, "overdue": 10, "pending": 20, "waiting": 10, "lost": 20, "expired": 20},
    "outage": {
        "stale": 50,
        "overdue": 20,
        "pending": 100,
        "waiting": 50,
        "lost": 100,
        "expired": 100,
    },
}
# stale: running, heartbeat stopped: sent again (check timeouts and the scan); overdue: running for
# over the timeout: timed out and revoked; pending: the broker was down at submit: relayed by the
# scan; waiting: handed to a provider: polled by the scan; lost: queued, message gone from the
# broker: sent again by the scan; expired: finished past retention: deleted by the cleanup.
# The indexes maintenance reads through (runs.models.Run.Meta), dropped in phase 2.
MAINTENANCE_INDEXES = {
    "st_hb": "(`status`, `heartbeat_at`)",
    "st_cr": "(`status`, `created_at`)",
    "st_fin": "(`status`, `finished_at`)",
    "st_at": "(`status`, `run_at`)",
}


def prepare(*, reuse: bool) -> None:
    if DB_NAME is None:
        sys.exit("bench/maintenance.py measures MariaDB/MySQL: set DATABASE_URL=mysql://...")
    prepare_database(fresh=not reuse)


def fill(rows: int, owner) -> float:
    """N finished runs of the last 20 days; returns seconds taken."""
    from django.db import connection
    from django.utils import timezone

    from runs.models import RunStatus
    from runs.tests.sleeper.models import SleepRun

    started = time.monotonic()
    now = timezone.now()
    statuses = (
        [RunStatus.SUCCEEDED] * 90
        + [RunStatus.FAILED] * 8
        + [RunStatus.CANCELLED, RunStatus.TIMED_OUT]
    )
    SleepRun.objects.bulk_create(
        SleepRun(
            owner=owner,
            status=statuses[i % 100],
            attempt=1,
            progress=100,
            finished_at=now - timedelta(seconds=i * 1700),
            heartbeat_at=now,
            started_at=now,
        )
        for i in range(min(rows, 1000))
    )
    table = SleepRun._meta.db_table
    columns = [f.column for f in SleepRun._meta.concrete_fields if f.column != "id"]
    aged = {
        "created_at": "created_at - INTERVAL FLOOR(RAND() * 1728000) SECOND",
        "finished_at": "finished_at - INTERVAL FLOOR(RAND() * 86400) SECOND",
    }
    select = ", ".join(aged.get(c, f"`{c}`") for c in columns)
    with connection.cursor() as cursor:
        while (count := SleepRun.objects.count()) < rows:
            cursor.execute(
                f"INSERT INTO `{table}` (id, {', '.join(f'`{c}`' for c in columns)}) "
                f"SELECT REPLACE(UUID(), '-', ''), {select} FROM `{table}` LIMIT {rows - count}"
            )
        cursor.execute(f"ANALYZE TABLE `{table}`")
    return time.monotonic() - started


def put_back_work(owner, mix: dict[str, int]) -> int:
    """The rows that need work, fresh before each task (the last task moved or deleted them), and
    an empty broker (a healthy one holds a short queue; no worker consumes these messages)."""
    import redis
    from django.conf import settings
    from django.utils import timezone

    from runs.models import RunStatus
    from runs.tests.sleeper.models import SleepRun

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    # By primary key: without the indexes (phase 2) a filter on any other column reads 1M rows.
    SleepRun.objects.filter(pk__in=PUT_BACK).delete()
    now = timezone.now()
    minutes_ago, hours_ago = now - timedelta(minutes=5), now - timedelta(hours=2)

    def make(kind: str, **fields) -> list[SleepRun]:
        return [SleepRun(owner=owner, stage="bench", **fields) for _ in range(mix[kind])]

    work = [
        *make("stale", status=RunStatus.RUNNING, attempt=1, started_at=minutes_ago,
              heartbeat_at=minutes_ago, task_id="dead"),
        *make("overdue", status=RunStatus.RUNNING, attempt=1, started_at=hours_ago,
              heartbeat_at=now),
        *make("pending", status=RunStatus.PENDING),
        *make("waiting", status=RunStatus.WAITING, attempt=1, started_at=now,
              heartbeat_at=minutes_ago, remote_job_id="job"),
        *make("lost", status=RunStatus.QUEUED, queued_at=hours_ago, task_id="lost"),
        *make("expired", status=RunStatus.SUCCEEDED, finished_at=now - timedelta(days=40)),
    ]  # fmt: skip
    SleepRun.objects.bulk_create(work)
    PUT_BACK[:] = [run.pk for run in work]
    # created_at is auto_now_add: age the rows that must look old.
    aged = [run.pk for run in work if run.status != RunStatus.WAITING]
    SleepRun.objects.filter(pk__in=aged).update(created_at=hours_ago)
    return len(work)


PUT_BACK: list = []  # the rows put back last time


def still_running(run) -> None:
    """The bench's provider: every job is still going. What a real poller adds (an HTTP call,
    its own UPDATE) is the provider's cost, not maintenance's, so it is left out."""


@dataclass
class Sample:
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    db_ms: float = 0.0
    statements: int = 0
    publishes: int = 0
    result: object = None


class Meter:
    """Times every statement and COMMIT sent and counts every task message published while on."""

    def __init__(self) -> None:
        self.sample = Sample()

    def __call__(self, execute, sql, params, many, context):  # connection.execute_wrapper
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.sample.db_ms += (time.perf_counter() - started) * 1000
            self.sample.statements += 1

    def published(self, **_) -> None:  # celery's before_task_publish
        self.sample.publishes += 1


def measure(work) -> Sample:
    from celery.signals import before_task_publish
    from django.db import connection

    meter = Meter()
    commit = connection._commit

    def timed_commit():  # COMMIT does not pass through execute wrappers; it is where fsync waits
        started = time.perf_counter()
        try:
            return commit()
        finally:
            meter.sample.db_ms += (time.perf_counter() - started) * 1000
            meter.sample.statements += 1

    connection._commit = timed_commit
    before_task_publish.connect(meter.published, weak=False)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with connection.execute_wrapper(meter):
            meter.sample.result = work()
    finally:
        meter.sample.wall_ms = (time.perf_counter() - wall) * 1000
        meter.sample.cpu_ms = (time.process_time() - cpu) * 1000
        before_task_publish.disconnect(meter.published)
        del connection._commit
    return meter.sample


def tasks() -> dict:
    from runs import maintenance

    return {
        "check timeouts": lambda: maintenance.check_timeouts(
            stale_after_seconds=30, timeout_minutes=30
        ),
        "scan": lambda: maintenance.scan(pending_grace_seconds=10, requeue_after_seconds=3600),
        "clean up": lambda: maintenance.cleanup(retention_days=30),
    }


def run_rounds(owner, rounds: int, label: str) -> dict[tuple[str, str], list[Sample]]:
    samples: dict[tuple[str, str], list[Sample]] = {}
    for round_number in range(rounds):
        for mix_name, mix in MIXES.items():
            for name, work in tasks().items():
                put_back_work(owner, mix)
                sample = measure(work)
                samples.setdefault((mix_name, name), []).append(sample)
                if round_number == 0:
                    print(f"  {label}, {mix_name}, {name}: {sample.result}", flush=True)
    return samples


def drop_indexes() -> None:
    from django.db import connection

    from runs.tests.sleeper.models import SleepRun

    table = SleepRun._meta.db_table
    drops = ", ".join(f"DROP INDEX `{table}_{suffix}`" for suffix in MAINTENANCE_INDEXES)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{table}` {drops}")


def restore_indexes() -> None:
    from django.db import connection

    from runs.tests.sleeper.models import SleepRun

    table = SleepRun._meta.db_table
    adds = ", ".join(
        f"ADD INDEX `{table}_{suffix}` {columns}" for suffix, columns in MAINTENANCE_INDEXES.items()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{table}` {adds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure on the table a --keep run left (no fill)"
    )
    parser.add_argument(
        "--indexed-only", action="store_true", help="skip phase 2 (quick, for alternating runs)"
    )
    options = parser.parse_args()

    prepare(reuse=options.reuse)
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from runs import waiting
    from runs.tests.sleeper.models import SleepRun

    waiting.register_poller(SleepRun, still_running)
    # The tasks log a line per timed-out or re-sent run; the bench prints its own summary.
    logging.disable(logging.WARNING)
    owner, created = get_user_model().objects.get_or_create(username="bench")
    if created or SleepRun.objects.count() < options.rows:
        print(f"filling {options.rows:,} rows ...", flush=True)
        print(f"filled in {fill(options.rows, owner):.1f} s", flush=True)
    SleepRun.objects.filter(stage="bench").delete()  # what an earlier --keep run left behind
    unindexed: dict = {}
    try:
        indexed = run_rounds(owner, options.rounds, "indexed")
        if not options.indexed_only:
            drop_indexes()
            try:
                unindexed = run_rounds(owner, options.rounds, "no index")
            finally:
                restore_indexes()
    finally:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
        if not options.keep:
            from django.db import connections

            connections.close_all()
            mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    report(options, indexed, unindexed)


def median(samples: list[Sample], name: str) -> float:
    return statistics.median(getattr(s, name) for s in samples)


def report(options, indexed: dict, unindexed: dict) -> None:
    print(
        f"\n{options.rows:,} finished rows, median of {options.rounds} rounds (ms; statements "
        "include COMMITs; publishes are task messages)"
    )
    for mix_name, mix in MIXES.items():
        work = ", ".join(f"{count} {kind}" for kind, count in mix.items())
        print(f"\n{mix_name}: {work}")
        print(
            "| task | wall | CPU | database | statements | publishes "
            f"| wall without indexes | database without indexes | target wall <= {TARGET_MS} ms |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name in tasks():
            ours, bare = indexed[mix_name, name], unindexed.get((mix_name, name), [Sample()])
            wall = median(ours, "wall_ms")
            verdict = "met" if wall <= TARGET_MS else "MISSED"
            print(
                f"| {name} | {wall:.1f} | {median(ours, 'cpu_ms'):.1f} "
                f"| {median(ours, 'db_ms'):.1f} | {median(ours, 'statements'):.0f} "
                f"| {median(ours, 'publishes'):.0f} | {median(bare, 'wall_ms'):.1f} "
                f"| {median(bare, 'db_ms'):.1f} | {verdict} |"
            )


if __name__ == "__main__":
    main()
