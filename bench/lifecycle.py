#!/usr/bin/env python
"""Throughput of the run lifecycle against bare Celery tasks and against Celery storing results
with django-celery-results (what users would run instead), side by side in one run.

N no-op runs go through the whole lifecycle (row inserted queued, sent, claimed, finished
succeeded, each transition in the history), N bare no-op Celery tasks, and N no-op tasks whose
result django-celery-results stores (the client waits for the rows, as a poller would), through
the same broker and the same worker with the same settings. The order of the three rotates every
round so machine noise hits each; medians are reported, then `ratio vs results:` and
`ratio vs bare:` (lifecycle runs/s over each anchor's tasks/s), and what each task or run cost
in CPU: this process (the client), the worker's main process, its children, and the MariaDB and
Redis servers (whole servers: anything else they serve that minute counts too). CPU per run moves
less with the machine's load than runs/s does.

    .venv/bin/python bench/lifecycle.py [--runs 500] [--rounds 5]

Environment: DATABASE_URL (default a bench_lifecycle database on the local MariaDB, created and
migrated here) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/10, flushed first).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import psutil
from common import configure, prepare_database

# DEBUG off, as deployed (bench/api.py does the same): with it on, Django times and keeps every
# query, a cost the worker pays per statement, so the side with the most statements the most.
configure(
    "bench_lifecycle",
    broker_db=10,
    EXTRA_APPS="runs.tests.sleeper",
    DEBUG="false",
    SECRET_KEY="bench-lifecycle-" + "x" * 50,
)

POLL_SECONDS = 0.02  # how often both sides look for completion
SERVERS = {"mariadb": ("mariadbd", "mysqld"), "redis": ("redis-server",)}


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Meter:
    """CPU seconds of the client, the worker's processes and the servers, read around a round."""

    def __init__(self, worker_pid: int, redis_port: int):
        self.worker = psutil.Process(worker_pid)
        self.servers = {
            name: process
            for process in psutil.process_iter(["name", "cmdline"])
            for name, names in SERVERS.items()
            if process.info["name"] in names
            and (name != "redis" or f":{redis_port}" in " ".join(process.info["cmdline"] or []))
        }

    def read(self) -> dict[str, float]:
        children = self.worker.children(recursive=True)
        return {
            "client": cpu_seconds(psutil.Process()),
            "worker main": cpu_seconds(self.worker),
            "worker children": sum(cpu_seconds(child) for child in children),
            **{name: cpu_seconds(process) for name, process in self.servers.items()},
        }

    def around(self, work: Callable[[], float], n: int) -> tuple[float, dict[str, float]]:
        """`work()`'s rate, and the CPU milliseconds per task each process spent meanwhile."""
        before = self.read()
        rate = work()
        after = self.read()
        return rate, {name: (after[name] - before[name]) * 1000 / n for name in after}


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
    from django.db import transaction
    from django.utils import timezone
    from django_celery_results.models import TaskResult

    from runs import lifecycle, submit
    from runs.models import RunStatus
    from runs.tests.helpers import start_worker
    from runs.tests.sleeper.models import NoopRun

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    counts = redis.Redis.from_url(settings.CACHE_URL)  # where sleeper.noop counts itself
    counts.flushdb()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    NoopRun.objects.all().delete()
    worker = start_worker(
        settings.CELERY_BROKER_URL, concurrency=options.concurrency, queues="celery"
    )
    n = options.runs
    meter = Meter(worker.process.pid, urlsplit(settings.CELERY_BROKER_URL).port or 6379)

    def bare_round(index: int) -> float:
        key = f"bench:noop:{index}"
        start = time.perf_counter()
        for _ in range(n):
            current_app.send_task("sleeper.noop", args=[key])
        while int(counts.get(key) or 0) < n:
            time.sleep(POLL_SECONDS)
        return n / (time.perf_counter() - start)

    def results_round(index: int) -> float:
        start, since = time.perf_counter(), timezone.now()
        ids = [current_app.send_task("sleeper.noop_result").id for _ in range(n)]
        stored = TaskResult.objects.filter(date_done__gte=since, task_id__in=ids, status="SUCCESS")
        while stored.count() < n:
            time.sleep(POLL_SECONDS)
        return n / (time.perf_counter() - start)

    def run_round(index: int) -> float:
        start, since = time.perf_counter(), timezone.now()
        for _ in range(n):  # inserted queued and sent one at a time, as the API's submit does
            with transaction.atomic():
                run = NoopRun(owner=owner, **lifecycle.queued_on_insert())
                submit.insert(run)
                lifecycle.send_on_commit(run)
        # Only this round's rows, through the (status, created_at) index: the poll stays cheap.
        done = NoopRun.objects.filter(status=RunStatus.SUCCEEDED, created_at__gte=since)
        while done.count() < n:
            time.sleep(POLL_SECONDS)
        return n / (time.perf_counter() - start)

    sides = {"bare": bare_round, "results": results_round, "lifecycle": run_round}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        bare_round(-1)  # warm up the worker's processes and connections
        results_round(-1)
        names = list(sides)
        for index in range(options.rounds):
            for name in names[index % 3 :] + names[: index % 3]:
                rate, spent = meter.around(lambda: sides[name](index), n)  # noqa: B023
                rates[name].append(rate)
                cpu[name].append(spent)
            latest = {name: f"{rates[name][-1]:.0f}" for name in sides}
            print(
                f"round {index + 1}: bare {latest['bare']} tasks/s, results {latest['results']} "
                f"tasks/s, lifecycle {latest['lifecycle']} runs/s",
                flush=True,
            )
    finally:
        worker.stop()
    assert NoopRun.objects.exclude(status=RunStatus.SUCCEEDED).count() == 0
    bare, results, runs = (statistics.median(rates[name]) for name in sides)
    print(
        f"\n{n} per round, {options.rounds} rounds, {options.concurrency} worker processes, "
        f"database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[1]}"
    )
    print(f"bare Celery:           median {bare:.0f} tasks/s")
    print(f"django-celery-results: median {results:.0f} tasks/s")
    print(f"lifecycle:             median {runs:.0f} runs/s")
    print(f"ratio vs results: {runs / results:.2f} (target >= 1.0)")
    print(f"ratio vs bare: {runs / bare:.2f} (target >= 0.6)")
    print("\nCPU per task or run, ms (medians):  " + "  ".join(f"{name:>9}" for name in sides))
    for process in cpu["bare"][0]:
        medians = (statistics.median(spent[process] for spent in cpu[name]) for name in sides)
        print(f"  {process:32}" + "  ".join(f"{value:9.2f}" for value in medians))


if __name__ == "__main__":
    main()
