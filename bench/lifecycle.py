#!/usr/bin/env python
"""Throughput of the run lifecycle against bare Celery tasks, side by side in one run.

N no-op runs go through the whole lifecycle (row created pending, dispatched, claimed, finished
succeeded) and N bare no-op Celery tasks go through the same broker and the same worker with the
same settings. Rounds alternate so machine noise hits both; medians are reported.

    .venv/bin/python bench/lifecycle.py [--runs 500] [--rounds 5]

Environment: DATABASE_URL (default a bench_lifecycle database on the local MariaDB, created and
migrated here) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/10, flushed first).
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import configure, prepare_database

configure("bench_lifecycle", broker_db=10, EXTRA_APPS="runs.tests.sleeper")

POLL_SECONDS = 0.02  # how often both sides look for completion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="runs and tasks per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    options = parser.parse_args()

    prepare_database()
    import django

    django.setup()
    import redis
    from celery import current_app
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from runs import lifecycle
    from runs.models import RunStatus
    from runs.tests.helpers import start_worker
    from runs.tests.sleeper.models import NoopRun

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    NoopRun.objects.all().delete()
    worker = start_worker(
        settings.CELERY_BROKER_URL, concurrency=options.concurrency, queues="celery"
    )
    n = options.runs

    def bare_round(index: int) -> float:
        key = f"bench:noop:{index}"
        start = time.perf_counter()
        for _ in range(n):
            current_app.send_task("sleeper.noop", args=[key])
        while int(broker.get(key) or 0) < n:
            time.sleep(POLL_SECONDS)
        return n / (time.perf_counter() - start)

    def run_round(index: int) -> float:
        start, since = time.perf_counter(), timezone.now()
        for _ in range(n):  # created and dispatched one at a time, as the API does
            lifecycle.dispatch(NoopRun.objects.create(owner=owner))
        # Only this round's rows, through the (status, created_at) index: the poll stays cheap.
        done = NoopRun.objects.filter(status=RunStatus.SUCCEEDED, created_at__gte=since)
        while done.count() < n:
            time.sleep(POLL_SECONDS)
        return n / (time.perf_counter() - start)

    try:
        bare_round(-1)  # warm up the worker's processes and connections
        bare, runs = [], []
        for index in range(options.rounds):
            bare.append(bare_round(index))
            runs.append(run_round(index))
            print(
                f"round {index + 1}: bare {bare[-1]:.0f} tasks/s, lifecycle {runs[-1]:.0f} runs/s"
            )
    finally:
        worker.stop()
    assert NoopRun.objects.exclude(status=RunStatus.SUCCEEDED).count() == 0
    tasks_per_s, runs_per_s = statistics.median(bare), statistics.median(runs)
    print(
        f"\n{n} per round, {options.rounds} rounds, {options.concurrency} worker processes, "
        f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[1]}"
    )
    print(f"bare Celery: median {tasks_per_s:.0f} tasks/s")
    print(f"lifecycle:   median {runs_per_s:.0f} runs/s")
    print(f"ratio:       {runs_per_s / tasks_per_s:.2f} (target >= 0.75)")


if __name__ == "__main__":
    main()
