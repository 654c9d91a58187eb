#!/usr/bin/env python
"""Live events at load: open event streams on one ASGI worker while runs progress.

S clients open `GET /api/events/` (every run of the bench user) on one uvicorn process; then R
sleeper runs (a few steps each) are dispatched to a real worker. Reported: whether every stream
got every run's terminal event, the delivery delay of every event (its `at`, taken when the
lifecycle made the change, against the moment the client read it; same machine, same clock),
and the server's memory per open stream (its RSS before and after opening them, / S).

    .venv/bin/python bench/events.py [--streams 200] [--runs 100] [--steps 3]

Environment: DATABASE_URL (default a bench_events database on the local MariaDB, created and
migrated here) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/14, flushed first; the
event streams live there too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import datetime

from common import configure, prepare_database

configure("bench_events", broker_db=14, EXTRA_APPS="runs.tests.sleeper")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def listen(base: str, token: str, state: dict, index: int, opened: asyncio.Event) -> None:
    """One stream: record (run id, status, delay) of each event until told to stop."""
    import httpx

    headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
    timeout = httpx.Timeout(30, read=None)
    async with (
        httpx.AsyncClient(base_url=base, timeout=timeout) as client,
        client.stream("GET", "/api/events/", headers=headers) as response,
    ):
        response.raise_for_status()
        state["open"] += 1
        if state["open"] == state["streams"]:
            opened.set()
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                event = json.loads("\n".join(data))
                data = []
                received = time.time()
                at = datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
                state["delays"].append(received - at)
                if event["status"] in state["terminal"]:
                    state["ended"][index].add(event["id"])
                    if len(state["ended"][index]) == state["runs"]:
                        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seconds-per-step", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=4, help="worker processes")
    options = parser.parse_args()

    prepare_database()
    import django

    django.setup()
    import logging

    import httpx
    import psutil
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from ops.testing import start_asgi, start_worker
    from runs import lifecycle
    from runs.models import TERMINAL, RunStatus
    from runs.tests.sleeper.models import SleepRun

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    owner, _ = get_user_model().objects.get_or_create(username="bench-events")
    token = Token.objects.get_or_create(user=owner)[0].key
    SleepRun.objects.filter(owner=owner).delete()

    worker = start_worker(
        settings.CELERY_BROKER_URL, concurrency=options.concurrency, queues="celery"
    )
    server, base = start_asgi(settings.CELERY_BROKER_URL)
    process = psutil.Process(server.process.pid)
    state: dict = {
        "streams": options.streams,
        "runs": options.runs,
        "terminal": {str(status) for status in TERMINAL},
        "open": 0,
        "delays": [],
        "ended": [set() for _ in range(options.streams)],
    }
    try:
        # Warm up: the app loaded, a request of each kind served, before the first reading.
        httpx.get(f"{base}/api/health/", timeout=30)
        warm = SleepRun.objects.create(owner=owner, status=RunStatus.SUCCEEDED)
        with httpx.stream(
            "GET",
            f"{base}/api/test/sleep-runs/{warm.pk}/events/",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        ) as answer:
            answer.read()
        warm.delete()
        time.sleep(1)
        rss_before = process.memory_info().rss

        async def bench() -> tuple[float, float]:
            opened = asyncio.Event()
            listeners = [
                asyncio.create_task(listen(base, token, state, i, opened))
                for i in range(options.streams)
            ]
            await asyncio.wait_for(opened.wait(), timeout=120)
            await asyncio.sleep(1)
            rss_open = process.memory_info().rss
            start = time.perf_counter()

            def submit() -> None:
                for _ in range(options.runs):
                    lifecycle.dispatch(
                        SleepRun.objects.create(
                            owner=owner,
                            steps=options.steps,
                            seconds_per_step=options.seconds_per_step,
                        )
                    )

            await asyncio.to_thread(submit)
            done, pending = await asyncio.wait(listeners, timeout=600)
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception():
                    raise task.exception()  # type: ignore[misc]
            return rss_open, time.perf_counter() - start

        rss_open, elapsed = asyncio.run(bench())
    finally:
        server.stop()
        worker.stop()

    succeeded = SleepRun.objects.filter(owner=owner, status=RunStatus.SUCCEEDED).count()
    complete = sum(len(ended) == options.runs for ended in state["ended"])
    delays = state["delays"]
    per_stream_kib = (rss_open - rss_before) / options.streams / 1024
    rows = [
        ("open streams (one uvicorn process)", f"{options.streams}"),
        ("runs (sleeper, steps x seconds)", f"{options.runs} ({options.steps} x "
         f"{options.seconds_per_step:g} s), {succeeded} succeeded"),
        ("streams that got every terminal event", f"{complete} of {options.streams}"),
        ("events delivered", f"{len(delays)}"),
        ("delivery delay p50 / p99 / max (ms)",
         f"{1000 * statistics.median(delays):.0f} / {1000 * percentile(delays, 0.99):.0f} / "
         f"{1000 * max(delays):.0f}"),
        ("server RSS before / with the streams (MiB)",
         f"{rss_before / 2**20:.1f} / {rss_open / 2**20:.1f}"),
        ("memory per open stream (KiB)", f"{per_stream_kib:.0f}"),
        ("wall time, first dispatch to last terminal event (s)", f"{elapsed:.1f}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"| {'what':<{width}} | figure |\n|{'-' * (width + 2)}|---|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    p99_ok = percentile(delays, 0.99) <= 1.0
    print(
        f"\nevery stream got every terminal event: {'yes' if complete == options.streams else 'NO'}"
        f"; p99 <= 1 s: {'met' if p99_ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
