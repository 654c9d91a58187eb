"""`status`: processes, ping, queue lengths, the beat's last tick and runs; exit 0, 1 or 2."""

from __future__ import annotations

import argparse

from ops.checks import beat_state, database_error, ping_workers, runs_by_status
from ops.commandline import project_queues

from .errors import DEGRADED, DOWN, HEALTHY
from .processes import SERVICES, process_summary, running_pid
from .queues import queue_lengths
from .services import broker_problem, broker_url

PING_TIMEOUT_SECONDS = 1.0


def status(args: argparse.Namespace) -> int:
    problems = [p for p in (broker_sentence(), database_sentence()) if p]
    for name in SERVICES:
        pid = running_pid(name)
        print(f"{name:9}{'running, ' + process_summary(pid) if pid else 'no pid file here'}")
    if problems:
        print("\n".join(problems))
        print("status: down")
        return DOWN
    workers = ping_workers(PING_TIMEOUT_SECONDS)
    print(f"{'ping':9}{', '.join(workers) + ' answered' if workers else 'no worker answered'}")
    lengths = queue_lengths(project_queues())
    print(f"{'queues':9}{', '.join(f'{q} {n}' for q, n in lengths.items())}")
    beat = beat_state()
    age = beat.age_seconds
    print(f"{'tick':9}{'beat never ticked' if age is None else f'last tick {age:.0f} s ago'}")
    print_runs(runs_by_status())
    return verdict(bool(workers), beat.status == "ok")


def broker_sentence() -> str | None:
    problem = broker_problem()
    return problem and f"{'broker':9}unreachable at {broker_url()} ({problem})"


def database_sentence() -> str | None:
    problem = database_error()
    return problem and f"{'database':9}unreachable ({problem})"


def print_runs(counts: dict[str, dict[str, int]]) -> None:
    for kind, by_status in counts.items():
        listed = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items())) or "none"
        print(f"{'runs':9}{kind}: {listed}")


def verdict(workers_answer: bool, beat_ticks: bool) -> int:
    if workers_answer and beat_ticks:
        print("status: healthy")
        return HEALTHY
    missing = [
        what
        for what, ok in (("no worker answers", workers_answer), ("beat is not ticking", beat_ticks))
        if not ok
    ]
    state = "down" if len(missing) == 2 else "degraded"
    print(f"status: {state} ({'; '.join(missing)})")
    return DOWN if state == "down" else DEGRADED
