"""`status`: processes, the worker nodes and their queues, queue lengths, the beat's last tick
and runs; exit 0, 1 or 2."""

from __future__ import annotations

import argparse

from ops.checks import beat_state, database_error, runs_by_status, worker_queues
from ops.commandline import SYSTEM_QUEUE, project_queues

from .errors import DEGRADED, DOWN, HEALTHY
from .processes import SERVICES, process_summary, running_pid
from .queues import queue_lengths
from .services import broker_problem, broker_url

PING_TIMEOUT_SECONDS = 1.0
WIDTH = 15  # the label column: the longest service name and a space or two


def line(label: str, text: str) -> None:
    print(f"{label:{WIDTH}}{text}")


def status(args: argparse.Namespace) -> int:
    problems = [p for p in (broker_sentence(), database_sentence()) if p]
    for name in SERVICES:
        pid = running_pid(name)
        line(name, "running, " + process_summary(pid) if pid else "no pid file here")
    if problems:
        print("\n".join(problems))
        print("status: down")
        return DOWN
    nodes = worker_queues(PING_TIMEOUT_SECONDS)  # answers like a ping, with each node's queues
    answered = ", ".join(f"{node} ({', '.join(queues)})" for node, queues in sorted(nodes.items()))
    line("ping", f"{answered} answered" if nodes else "no worker answered")
    lengths = queue_lengths(project_queues())
    line("queues", ", ".join(f"{q} {n}" for q, n in lengths.items()))
    unconsumed = unconsumed_queues(nodes)
    if nodes and unconsumed:
        line("consumers", f"no worker consumes {', '.join(unconsumed)}")
    beat = beat_state()
    age = beat.age_seconds
    line("tick", "beat never ticked" if age is None else f"last tick {age:.0f} s ago")
    print_runs(runs_by_status())
    return verdict(bool(nodes), beat.status == "ok", unconsumed if nodes else [])


def unconsumed_queues(nodes: dict[str, list[str]]) -> list[str]:
    """Project queues no answering worker consumes: their messages wait for nobody."""
    consumed = {queue for queues in nodes.values() for queue in queues}
    return [queue for queue in project_queues() if queue not in consumed]


def broker_sentence() -> str | None:
    problem = broker_problem()
    return problem and f"{'broker':{WIDTH}}unreachable at {broker_url()} ({problem})"


def database_sentence() -> str | None:
    problem = database_error()
    return problem and f"{'database':{WIDTH}}unreachable ({problem})"


def print_runs(counts: dict[str, dict[str, int]]) -> None:
    for kind, by_status in counts.items():
        listed = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items())) or "none"
        line("runs", f"{kind}: {listed}")


def verdict(workers_answer: bool, beat_ticks: bool, unconsumed: list[str]) -> int:
    missing = [
        what
        for what, ok in (("no worker answers", workers_answer), ("beat is not ticking", beat_ticks))
        if not ok
    ]
    if SYSTEM_QUEUE in unconsumed:
        missing.append(f"no worker consumes {SYSTEM_QUEUE}: maintenance does not run")
    elif unconsumed:
        missing.append(f"no worker consumes {', '.join(unconsumed)}")
    if not missing:
        print("status: healthy")
        return HEALTHY
    state = "down" if not workers_answer and not beat_ticks else "degraded"
    print(f"status: {state} ({'; '.join(missing)})")
    return DOWN if state == "down" else DEGRADED
