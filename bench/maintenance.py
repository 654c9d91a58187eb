#!/usr/bin/env python
"""Database time of each maintenance task on a 1,000,000-row runs table, against the naive shape.

The sleeper kind's table is filled with N finished runs (fast: one batch, then INSERT ... SELECT
doubling) plus 100 rows that need work: stale heartbeats, runs past their timeout, old pending,
waiting, lost queued, and finished runs past retention. Each round puts the 100 back, then runs
the real tasks (runs.maintenance.check_timeouts, scan, cleanup) and times every query they send;
the naive shape is the seed's: the same status filters with the indexes ignored (a table scan).
Medians over the rounds are reported, with their ratio.

    .venv/bin/python bench/maintenance.py [--rows 1000000] [--rounds 5] [--keep]

Environment: DATABASE_URL (default a bench_maint database on the local MariaDB, created, migrated
and dropped at the end unless --keep) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/13,
flushed at the end: the redispatched runs' messages land there, no worker consumes them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
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


def prepare() -> None:
    if DB_NAME is None:
        sys.exit("bench/maintenance.py measures MariaDB/MySQL: set DATABASE_URL=mysql://...")
    prepare_database(fresh=True)


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


def put_back_work(owner) -> int:
    """The 100 rows that need work, fresh each round (the tasks moved or deleted last round's)."""
    from django.utils import timezone

    from runs.models import RunStatus
    from runs.tests.sleeper.models import SleepRun

    SleepRun.objects.filter(stage="bench").delete()
    now = timezone.now()
    hours_ago, days_ago = now - timedelta(hours=2), now - timedelta(days=40)

    def make(count: int, **fields) -> list[SleepRun]:
        return [SleepRun(owner=owner, stage="bench", **fields) for _ in range(count)]

    work = [
        *make(
            20,
            status=RunStatus.RUNNING,
            attempt=1,
            started_at=now - timedelta(minutes=5),
            heartbeat_at=now - timedelta(minutes=5),
            task_id="dead",
        ),  # stale: redispatched
        *make(
            10, status=RunStatus.RUNNING, attempt=1, started_at=hours_ago, heartbeat_at=now
        ),  # past timeout
        *make(20, status=RunStatus.PENDING),  # broker was down: relayed
        *make(10, status=RunStatus.WAITING, started_at=now, remote_job_id="job"),  # polled
        *make(20, status=RunStatus.QUEUED, queued_at=hours_ago, task_id="lost"),  # lost message
        *make(20, status=RunStatus.SUCCEEDED, finished_at=days_ago),  # past retention: deleted
    ]
    SleepRun.objects.bulk_create(work)
    # created_at is auto_now_add: age the rows that must look old.
    SleepRun.objects.filter(stage="bench").exclude(status=RunStatus.WAITING).update(
        created_at=hours_ago
    )
    return len(work)


class QueryTimer:
    """Sums the time of every query sent while it is installed (connection.execute_wrapper)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.queries = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.queries += 1


def timed(work) -> tuple[float, int, object]:
    """Milliseconds spent in the database (queries and commits), query count, and the result."""
    from django.db import connection

    timer = QueryTimer()
    commit = connection._commit

    def timed_commit():  # COMMIT does not pass through execute wrappers; it is where fsync waits
        started = time.perf_counter()
        try:
            return commit()
        finally:
            timer.seconds += time.perf_counter() - started

    connection._commit = timed_commit
    try:
        with connection.execute_wrapper(timer):
            result = work()
    finally:
        del connection._commit
    return timer.seconds * 1000, timer.queries, result


def naive_queries() -> dict[str, list[str]]:
    """The seed's shape: find by status (and a time bound) with no index, then update by id."""
    from runs.tests.sleeper.models import SleepRun

    table = SleepRun._meta.db_table
    ignored = f"{table}_st_hb, {table}_st_cr, {table}_st_fin"
    scan = f"SELECT id FROM `{table}` IGNORE INDEX ({ignored}) WHERE "
    return {
        "check_timeouts": [
            scan + "status IN ('running','waiting') AND started_at < NOW() - INTERVAL 30 MINUTE",
            scan + "status = 'running' AND heartbeat_at < NOW() - INTERVAL 30 SECOND",
        ],
        "scan": [
            scan + "status = 'pending' AND created_at < NOW() - INTERVAL 10 SECOND",
            scan + "status = 'waiting'",
            scan + "status = 'queued' AND queued_at < NOW() - INTERVAL 1 HOUR",
        ],
        "cleanup": [
            scan + "status IN ('succeeded','failed','cancelled','timed_out') "
            "AND finished_at < NOW() - INTERVAL 30 DAY",
        ],
    }


def run_naive(queries: list[str]) -> float:
    from django.db import connection

    def work():
        with connection.cursor() as cursor:
            for sql in queries:
                cursor.execute(sql)
                cursor.fetchall()

    return timed(work)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    options = parser.parse_args()

    prepare()
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from runs import maintenance

    owner = get_user_model().objects.create_user("bench")
    print(f"filling {options.rows:,} rows ...", flush=True)
    print(f"filled in {fill(options.rows, owner):.1f} s", flush=True)
    tasks = {
        "check_timeouts": lambda: maintenance.check_timeouts(
            stale_after_seconds=30, timeout_minutes=30
        ),
        "scan": lambda: maintenance.scan(pending_grace_seconds=10, requeue_after_seconds=3600),
        "cleanup": lambda: maintenance.cleanup(retention_days=30),
    }
    naive = naive_queries()
    ours_ms: dict[str, list[float]] = {name: [] for name in tasks}
    naive_ms: dict[str, list[float]] = {name: [] for name in tasks}
    try:
        for round_number in range(options.rounds):
            put_back_work(owner)
            for name, work in tasks.items():
                naive_ms[name].append(run_naive(naive[name]))
                ms, queries, result = timed(work)
                ours_ms[name].append(ms)
                if round_number == 0:
                    print(f"  {name}: {result} in {queries} queries", flush=True)
    finally:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
        if not options.keep:
            from django.db import connections

            connections.close_all()
            mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    report(options, ours_ms, naive_ms)


def report(options, ours_ms: dict, naive_ms: dict) -> None:
    print(
        f"\n{options.rows:,} rows, 100 needing work, median of {options.rounds} rounds "
        f"(database time per task, ms):"
    )
    print(f"| task | ours | naive (no index) | naive / ours | target <= {TARGET_MS} ms |")
    print("|---|---|---|---|---|")
    for name in ours_ms:
        ours, slow = statistics.median(ours_ms[name]), statistics.median(naive_ms[name])
        verdict = "met" if ours <= TARGET_MS else "MISSED"
        print(f"| {name} | {ours:.1f} | {slow:.1f} | {slow / ours:.0f}x | {verdict} |")


if __name__ == "__main__":
    main()
