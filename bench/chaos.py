#!/usr/bin/env python
"""Chaos benchmark: real worker, beat, broker and database processes killed while runs flow.

    .venv/bin/python bench/chaos.py [a b c d e f] [--runs N] [--quick] [--repeat K] [--keep]

Scenarios (issue 10), every one with a worker (concurrency 2) and beat started by the project's own
`run_celery.py`, the seeded schedule defaults (`manage.py sync_schedules`, not shortened), a Redis
of the bench's own without persistence, and the test-only sleeper kind (2 steps of 0.5 s):
  a  >= 200 SIGKILLs of worker pool children during >= 1,000 runs; maintenance must stay on time
  b  the whole worker SIGKILLed and restarted (run_celery.py) 4 times during >= 200 runs
  c  the broker down while >= 200 runs are submitted through the HTTP API (gunicorn); then back
  d  the broker SIGKILLed with >= 200 runs in flight and restarted empty 10 s later
  e  the database (a mariadbd of the bench's own) SIGKILLed with >= 200 runs in flight, back
     10 s later
  f  two beats for >= 3 minutes, then the leader SIGKILLed: no schedule fires twice, the other leads

Per scenario it prints submitted, succeeded, failed (failed, timed_out or cancelled), lost (not
terminal when the wait ended), double terminal (runs that entered a terminal state more than once,
from a trigger-written log of every transition), duplicate effects (runs whose steps completed more
than once) and the seconds from the end of the fault until every run was terminal. The wait is
bounded: 120 s (--grace) after the fault's end plus the work still left then. Exit 1 if a target is
missed: 0 lost, 0 double terminal, 0 duplicate effects, every run terminal within that bound; in
(a) also every killed run terminal within 120 s (+ its work) of its death and every maintenance
firing done within one interval of its due time; in (c) a 202 for every submit; in (f) no schedule
sent twice for one due time and the follower leading after the kill.

Each scenario runs in a child process of its own (its own broker, database URL and Django), and
stops every process it started, by pid, even on an error or Ctrl-C. Databases: `bench_chaos_<x>` on
the machine's MariaDB (127.0.0.1:3306, root), created fresh and dropped afterwards (--keep keeps it
and the temporary folder with every log).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

from chaos_lab import (
    ACTIVE,
    PYTHON,
    ROOT,
    FiringRecorder,
    Lab,
    install_transition_log,
    kill_now,
    last_terminal_at,
    lateness,
    redone_runs,
    retrying,
    spread,
    status_counts,
    wait_until,
)
from chaos_lab import double_terminal as count_double_terminal
from chaos_lab import duplicate_effects as count_duplicate_effects
from common import configure, mysql

DATABASE = "bench_chaos_{}"  # one per scenario, so --keep keeps each for a post-mortem
STEPS, STEP_SECONDS = 2, 0.5  # a short run: the faults, not the work, should dominate
RUN_SECONDS = STEPS * STEP_SECONDS
CONCURRENCY = 2
GRACE_SECONDS = 120  # target: every run terminal within this after a fault's end (+ work left)
OUTAGE_SECONDS = 10  # how long a killed broker or database stays down
# The seeded defaults (schedules.seeding), checked at start: the bench must not shorten them.
SCHEDULES = {"scan async runs": ("runs.scan", 15), "check timeouts": ("runs.check_timeouts", 300)}
PROGRESS_EVERY = 15  # seconds between progress lines

TITLES = {
    "a": "worker children SIGKILLed",
    "b": "whole worker SIGKILLed + restarted",
    "c": "broker down at submit (HTTP API)",
    "d": "broker SIGKILLed + restarted empty",
    "e": "database SIGKILLed + restarted",
    "f": "two beats, leader SIGKILLed",
}


@dataclass(frozen=True)
class Size:
    runs: int
    faults: int = 1
    beats_seconds: float = 180  # (f) both beats running
    watch_seconds: float = 60  # (f) watched after the leader is killed


FULL = {
    "a": Size(1000, faults=200),
    "b": Size(200, faults=4),
    "c": Size(200),
    "d": Size(250),  # >= 200 still in flight when the broker dies
    "e": Size(250),
    "f": Size(200),
}
QUICK = {
    "a": Size(100, faults=20),
    "b": Size(40, faults=2),
    "c": Size(20),
    "d": Size(40),
    "e": Size(40),
    "f": Size(40, beats_seconds=45, watch_seconds=40),
}


# -- Results: one dataclass per scenario, the shared columns in the base ---------------------------


@dataclass
class Result:
    scenario: str
    title: str = ""
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0  # failed, timed_out or cancelled
    lost: int = 0  # not terminal when the bounded wait ended
    double_terminal: int = 0
    duplicate_effects: int = 0
    recovery_seconds: float | None = None  # fault end -> every run terminal (None: never, in time)
    budget_seconds: float = 0.0  # GRACE + the work left at the fault's end
    stuck: dict = field(default_factory=dict)  # status -> runs, at the end of the wait
    ended: dict = field(default_factory=dict)  # terminal status -> runs
    maintenance: dict = field(default_factory=dict)  # task -> [largest lateness, firings, not done]
    redo: str = ""  # runs claimed again: previous claim -> next claim
    redo_to_terminal: str = ""  # previous claim -> terminal
    load: str = ""
    exited: list = field(default_factory=list)  # worker/beat processes that died on their own
    why_not_succeeded: dict = field(default_factory=dict)  # "status: message" -> runs
    paid_calls_repeated: int | None = None  # the sleeper's outside call, where it has one
    error: str = ""

    def misses(self) -> list[str]:
        missed = [f"crashed: {self.error}"] if self.error else []
        if self.lost:
            missed.append(f"{self.lost} lost")
        if self.double_terminal:
            missed.append(f"{self.double_terminal} double terminal")
        if self.duplicate_effects:
            missed.append(f"{self.duplicate_effects} duplicate effects")
        if not self.lost and (self.recovery_seconds or 0) > self.budget_seconds:
            missed.append(
                f"all terminal after {self.recovery_seconds:.0f} s > {self.budget_seconds:.0f} s"
            )
        return missed

    def details(self) -> list[str]:
        lines = []
        if self.stuck:
            lines.append(
                "not terminal at the end: " + ", ".join(f"{s} {n}" for s, n in self.stuck.items())
            )
        lines.append("ended: " + (", ".join(f"{s} {n}" for s, n in self.ended.items()) or "none"))
        for why, runs in self.why_not_succeeded.items():
            lines.append(f"  {runs} x {why}")
        if self.paid_calls_repeated is not None:
            lines.append(
                f"runs whose checkpointed outside call ran twice: {self.paid_calls_repeated}"
            )
        if self.redo:
            lines.append(f"runs claimed again, previous claim -> next claim: {self.redo}")
            lines.append(f"  previous claim -> terminal: {self.redo_to_terminal}")
        for task, (late, fired, not_done) in self.maintenance.items():
            late_text = "n/a" if late is None else f"{late:.0f} s"
            lines.append(
                f"maintenance {task}: fired {fired}, not done {not_done}, "
                f"largest lateness {late_text}"
            )
        if self.exited:
            lines.append("exited on their own during the scenario: " + ", ".join(self.exited))
        lines.append(f"load average (1 min) start/end: {self.load}")
        return lines


@dataclass
class WorkerChildrenResult(Result):  # (a)
    kills: int = 0
    killed_runs_late: int = 0  # claimed again but not terminal within GRACE + a run's work
    maintenance_on_time: bool = True
    maintenance_misses: list = field(default_factory=list)

    def misses(self) -> list[str]:
        missed = super().misses()
        if self.killed_runs_late:
            missed.append(
                f"{self.killed_runs_late} killed runs terminal > {GRACE_SECONDS} s after death"
            )
        return missed + self.maintenance_misses

    def details(self) -> list[str]:
        return [f"SIGKILLs of pool children: {self.kills}", *super().details()]


@dataclass
class WorkerRestartResult(Result):  # (b)
    restarts: int = 0
    restart_seconds: list = field(default_factory=list)  # run_celery.py worker until it pings

    def details(self) -> list[str]:
        took = ", ".join(f"{s:.0f}" for s in self.restart_seconds)
        return [
            f"worker SIGKILLed and restarted {self.restarts} times (start took {took} s)",
            *super().details(),
        ]


@dataclass
class BrokerAtSubmitResult(Result):  # (c)
    answers: dict = field(default_factory=dict)  # HTTP status -> count
    submit_seconds: float = 0.0
    down_seconds: float = 0.0

    def misses(self) -> list[str]:
        missed = super().misses()
        if self.answers.get("202", 0) != self.submitted:
            missed.append(f"API answers {self.answers} (expected 202 for all)")
        return missed

    def details(self) -> list[str]:
        return [
            f"HTTP answers while the broker was down: {self.answers}; submitting took "
            f"{self.submit_seconds:.0f} s, broker down {self.down_seconds:.0f} s",
            *super().details(),
        ]


@dataclass
class CrashResult(Result):  # (d) and (e)
    in_flight: int = 0  # runs not terminal when the process was killed
    outage_seconds: float = 0.0

    def details(self) -> list[str]:
        return [
            f"in flight at the kill: {self.in_flight}; down {self.outage_seconds:.0f} s",
            *super().details(),
        ]


@dataclass
class TwoBeatsResult(Result):  # (f)
    two_beats_seconds: float = 0.0
    firings_by_beat: dict = field(default_factory=dict)  # "leader|follower before|after" -> count
    double_firings: int = 0  # two sends of one schedule within half its interval
    takeover_seconds: float | None = None  # leader killed -> the follower holds the lease
    first_firing_after_kill: float | None = None  # leader killed -> follower fires the scan
    largest_scan_gap: float | None = None

    def misses(self) -> list[str]:
        missed = super().misses()
        if self.double_firings:
            missed.append(f"{self.double_firings} double firings")
        if self.takeover_seconds is None:
            missed.append("the follower never took over")
        return missed

    def details(self) -> list[str]:
        takeover = "never" if self.takeover_seconds is None else f"{self.takeover_seconds:.0f} s"
        first = (
            "never"
            if self.first_firing_after_kill is None
            else f"{self.first_firing_after_kill:.0f} s"
        )
        gap = "n/a" if self.largest_scan_gap is None else f"{self.largest_scan_gap:.0f} s"
        return [
            f"two beats for {self.two_beats_seconds:.0f} s; firings by beat: {self.firings_by_beat}"
            f"; double firings {self.double_firings}",
            f"leader killed -> follower holds the lease {takeover}, fires the scan {first}; "
            f"largest gap between scan firings {gap}",
            *super().details(),
        ]


RESULT_TYPES = {
    cls.__name__: cls
    for cls in (
        Result,
        WorkerChildrenResult,
        WorkerRestartResult,
        BrokerAtSubmitResult,
        CrashResult,
        TwoBeatsResult,
    )
}


# -- One scenario's world (in the child process) -------------------------------------------------


class World:
    """A scenario in progress: its processes, Django, the runs' owner and the firing recorder."""

    def __init__(self, letter: str, size: Size, lab: Lab, grace: float) -> None:
        self.letter, self.size, self.lab, self.grace = letter, size, lab, grace
        self.started = time.time()
        self._said = 0.0
        self.submitted = 0
        self.load_start = os.getloadavg()[0]
        from django.contrib.auth import get_user_model

        from runs.tests.sleeper.models import SleepEffect, SleepRun

        self.Run, self.runs_table = SleepRun, SleepRun._meta.db_table
        self.effects_table = SleepEffect._meta.db_table
        self.owner = get_user_model().objects.create_user("chaos", password="chaos-bench-pw")
        self.recorder = FiringRecorder()
        self.recorder.start()
        self.recorder.listening.wait(15)
        self.worker = lab.celery("worker", "worker", "--concurrency", str(CONCURRENCY))
        self.beat = lab.celery("beat", "beat")
        self.beat_started = time.time()
        self.say(f"worker pid {self.worker.pid}, beat pid {self.beat.pid}, broker {lab.redis.url}")

    def say(self, text: str) -> None:
        print(f"[{self.letter}] {time.time() - self.started:5.0f} s  {text}", flush=True)

    def progress(self, extra: str = "", *, force: bool = False) -> None:
        if force or time.time() - self._said >= PROGRESS_EVERY:
            self._said = time.time()
            counts = retrying(lambda: status_counts(self.runs_table))
            self.say(" ".join(f"{s} {n}" for s, n in sorted(counts.items())) + extra)

    def submit(self, count: int) -> None:
        """Create and dispatch runs as the API does (row first, then the message)."""
        from runs import lifecycle

        for _ in range(count):
            run = self.Run.objects.create(
                owner=self.owner, steps=STEPS, seconds_per_step=STEP_SECONDS
            )
            lifecycle.dispatch(run)
            self.submitted += 1

    def active(self) -> int:
        counts = retrying(lambda: status_counts(self.runs_table))
        return sum(counts.get(status, 0) for status in ACTIVE)

    def settle(self, result: Result, fault_end: float) -> Result:
        """Wait (bounded) until every run is terminal, then count everything the table shows."""
        left = self.active()
        result.budget_seconds = self.grace + left * RUN_SECONDS / CONCURRENCY
        self.say(
            f"fault over; {left} runs not terminal; waiting up to {result.budget_seconds:.0f} s"
        )
        deadline = fault_end + result.budget_seconds
        while time.time() < deadline and self.active():
            self.progress()
            time.sleep(2)
        self.progress(force=True)
        return self.count(result, fault_end)

    def count(self, result: Result, fault_end: float) -> Result:
        counts = retrying(lambda: status_counts(self.runs_table))
        result.title = TITLES[self.letter]
        result.submitted = self.submitted
        result.succeeded = counts.get("succeeded", 0)
        result.failed = sum(counts.get(s, 0) for s in ("failed", "timed_out", "cancelled"))
        result.lost = sum(counts.get(s, 0) for s in ACTIVE)
        result.stuck = {s: counts[s] for s in ACTIVE if counts.get(s)}
        result.ended = {
            s: counts[s] for s in ("succeeded", "failed", "timed_out", "cancelled") if counts.get(s)
        }
        result.double_terminal = retrying(count_double_terminal)
        result.duplicate_effects = retrying(lambda: count_duplicate_effects(self.effects_table))
        last = retrying(last_terminal_at)
        if not result.lost and last is not None:
            result.recovery_seconds = max(0.0, last - fault_end)
        redos = retrying(redone_runs)
        result.redo = spread([r.reclaimed_after for r in redos if r.reclaimed_after is not None])
        result.redo_to_terminal = spread(
            [r.terminal_after for r in redos if r.terminal_after is not None]
        )
        result.maintenance = self.maintenance_lateness(until=time.time())
        result.why_not_succeeded = retrying(self.failure_reasons)
        result.paid_calls_repeated = self.paid_calls_repeated()
        result.load = f"{self.load_start:.1f} / {os.getloadavg()[0]:.1f}"
        result.exited = [
            f"{service.verb} pid {pid} ({service.log_dir.name}/{service.verb}.log)"
            for service in self.lab.services
            for pid in service.exited()
        ]
        return result

    def failure_reasons(self) -> dict:
        """The commonest messages of runs that ended other than succeeded, and of stuck ones."""
        from django.db.models import Count

        rows = (
            self.Run.objects.exclude(status="succeeded")
            .values_list("status", "message")
            .annotate(runs=Count("id"))
            .order_by("-runs")[:4]
        )
        return {
            f"{status}: {message or '(no message)'}"[:140]: runs for status, message, runs in rows
        }

    def paid_calls_repeated(self) -> int | None:
        """Runs whose `pay_once` counter (the sleeper's stand-in for a paid provider call, a Redis
        key per run, where the code has it) is above 1; None when there are none (older code, or
        the broker crash wiped them)."""
        import redis

        try:
            # The sleeper counts in the cache's Redis: the broker's next db (web/settings.py).
            client = redis.Redis.from_url(self.lab.redis.url.rsplit("/", 1)[0] + "/1")
            keys = list(client.scan_iter("sleeper:paid-calls:*", count=1000))
            values = client.mget(keys) if keys else []
        except redis.RedisError:
            return None
        return sum(1 for value in values if value and int(value) > 1) if keys else None

    def maintenance_lateness(self, until: float) -> dict:
        firings = retrying(self.recorder.completed)
        return {task: list(lateness(firings, task, until)) for task, _ in SCHEDULES.values()}

    def lease_holder_pid(self) -> int | None:
        """The pid of the beat holding an unexpired lease (holder is host:pid:nonce)."""
        try:
            from schedules.beat import lease_holder
        except ImportError:  # before the schedules app was split out of runs
            from runs.beat import lease_holder

        holder = retrying(lease_holder)
        return int(holder.split(":")[1]) if holder else None


# -- The scenarios --------------------------------------------------------------------------------


def kill_worker_children(world: World) -> Result:
    """(a) SIGKILL a random pool child every few seconds while a backlog of short runs drains."""
    size, result = world.size, WorkerChildrenResult("a")
    world.submit(size.runs)
    world.say(f"submitted {size.runs} runs")
    # Spread the kills over ~80% of the time the work alone takes, so they land on busy children.
    interval = max(0.5, 0.8 * size.runs * RUN_SECONDS / CONCURRENCY / size.faults)
    last_kill = time.time()
    while result.kills < size.faults and world.active():
        children = world.worker.children()
        if children and kill_now(random.choice(children), group=False):
            result.kills += 1
            last_kill = time.time()
        world.progress(f" (kills {result.kills})")
        time.sleep(interval)
    world.settle(result, last_kill)
    judge_killed_runs(result)
    judge_maintenance(world, result)
    return result


def judge_killed_runs(result: WorkerChildrenResult) -> None:
    """Each kill is a fault of its own: its run must be terminal within GRACE (+ its work) of the
    death. The death is after the previous claim, so previous claim -> terminal bounds it."""
    limit = GRACE_SECONDS + RUN_SECONDS
    redos = retrying(redone_runs)
    result.killed_runs_late = sum(
        1 for r in redos if r.terminal_after is not None and r.terminal_after > limit
    )


def judge_maintenance(world: World, result: WorkerChildrenResult) -> None:
    """On time: every firing done within one interval of its due time (beat sends it then), and
    beat firing about as often as the schedule says."""
    window = time.time() - world.beat_started
    for task, interval in SCHEDULES.values():
        late, fired, _ = result.maintenance[task]
        if late is not None and late > interval:
            result.maintenance_misses.append(
                f"{task} up to {late:.0f} s late (interval {interval} s)"
            )
        expected = int(window // interval)
        if fired < expected - 1:
            result.maintenance_misses.append(f"{task} fired {fired} times, ~{expected} expected")
    result.maintenance_on_time = not result.maintenance_misses


def restart_whole_worker(world: World) -> Result:
    """(b) SIGKILL the worker's main process and children; restart it with run_celery.py."""
    size, result = world.size, WorkerRestartResult("b")
    world.submit(size.runs)
    world.say(f"submitted {size.runs} runs")
    up_seconds = max(5.0, size.runs * RUN_SECONDS / CONCURRENCY / (size.faults + 1))
    fault_end = time.time()
    for _ in range(size.faults):
        time.sleep(up_seconds)
        world.progress(" (killing the worker)", force=True)
        world.worker.kill()
        time.sleep(3)  # down for a moment, as a crashed host or OOM kill would leave it
        result.restart_seconds.append(world.worker.start())
        result.restarts += 1
        fault_end = time.time()
        world.say(f"worker restarted (pid {world.worker.pid})")
    return world.settle(result, fault_end)


def broker_down_at_submit(world: World) -> Result:
    """(c) Stop Redis, submit through the HTTP API (expect 202 each), start Redis again."""
    from rest_framework.authtoken.models import Token

    size, result = world.size, BrokerAtSubmitResult("c")
    web = world.lab.start_web()
    tokens = [Token.objects.create(user=user).key for user in api_users(world, size.runs)]
    world.lab.redis.stop()
    down = time.time()
    world.say(f"broker stopped; {len(tokens)} users submit {size.runs} runs to {web.base}")
    answers = submit_over_http(web.base, tokens, size.runs)
    result.submit_seconds = time.time() - down
    result.answers = dict(Counter(str(code) for code in answers))
    world.submitted = len(answers)
    world.lab.redis.start()
    fault_end = time.time()
    result.down_seconds = fault_end - down
    world.say(f"broker back after {result.down_seconds:.0f} s; answers {result.answers}")
    return world.settle(result, fault_end)


def api_users(world: World, runs: int) -> list:
    """Enough users that none reaches the per-user cap on active runs (the API's abuse limit,
    RUN_ACTIVE_LIMIT_PER_USER, where the code has one): this scenario measures the outbox, not
    the limits, so it submits as many clients would instead of raising the cap."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    cap = getattr(settings, "RUN_ACTIVE_LIMIT_PER_USER", 0) or runs
    extra = [
        get_user_model().objects.create_user(f"chaos-{index}", password="chaos-bench-pw")
        for index in range(1, math.ceil(runs / cap))
    ]
    return [world.owner, *extra]


def submit_over_http(base: str, tokens: list[str], count: int) -> list[int | str]:
    """POST the runs four at a time, the users taking turns."""
    import httpx

    body = {"steps": STEPS, "seconds_per_step": STEP_SECONDS}
    with httpx.Client(base_url=base, timeout=60) as client:

        def post(index: int) -> int | str:
            headers = {"Authorization": f"Token {tokens[index % len(tokens)]}"}
            try:
                return client.post("/api/test/sleep-runs/", json=body, headers=headers).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(post, range(count)))


def wait_for_work_started(world: World) -> None:
    """Let the worker get going first, so the fault hits running runs as well as queued ones."""
    wait_until(
        lambda: world.Run.objects.filter(status="running").exists(),
        timeout=60,
        what="a run to start",
    )
    time.sleep(3)


def broker_crash(world: World) -> Result:
    """(d) SIGKILL Redis (no persistence: every queued message is gone) and restart it empty."""
    size, result = world.size, CrashResult("d")
    world.submit(size.runs)
    wait_for_work_started(world)
    result.in_flight = world.active()
    world.lab.redis.kill()
    killed = time.time()
    world.say(f"broker SIGKILLed with {result.in_flight} runs in flight")
    time.sleep(OUTAGE_SECONDS)
    world.lab.redis.start()
    fault_end = time.time()
    result.outage_seconds = fault_end - killed
    return world.settle(result, fault_end)


def database_crash(world: World) -> Result:
    """(e) SIGKILL the bench's own mariadbd with runs in flight, restart it on the same datadir."""
    from django.db import connection

    size, result = world.size, CrashResult("e")
    world.submit(size.runs)
    wait_for_work_started(world)
    result.in_flight = world.active()
    assert world.lab.mariadb is not None
    connection.close()
    world.lab.mariadb.kill()
    killed = time.time()
    world.say(f"database SIGKILLed with {result.in_flight} runs in flight")
    time.sleep(OUTAGE_SECONDS)
    world.lab.mariadb.start()
    fault_end = time.time()
    result.outage_seconds = fault_end - killed
    world.say(f"database back after {result.outage_seconds:.0f} s (crash recovery included)")
    return world.settle(result, fault_end)


def two_beats(world: World) -> Result:
    """(f) A second beat beside the first for minutes while runs flow; then the leader dies."""
    size, result = world.size, TwoBeatsResult("f")
    wait_until(
        lambda: world.lease_holder_pid() == world.beat.pid,
        timeout=60,
        what="the first beat to lead",
    )
    second = world.lab.celery("beat", "beat2")
    began = time.time()
    world.say(f"second beat started (pid {second.pid}); both run for {size.beats_seconds:.0f} s")
    submit_steadily(world, size.runs, size.beats_seconds)
    result.two_beats_seconds = time.time() - began
    leader_pid = world.lease_holder_pid()
    leader, follower = (
        (world.beat, second) if leader_pid == world.beat.pid else (second, world.beat)
    )
    leader.kill()
    killed = time.time()
    world.say(f"leader beat (pid {leader.pid}) SIGKILLed; follower is pid {follower.pid}")
    try:
        wait_until(
            lambda: world.lease_holder_pid() == follower.pid,
            timeout=120,
            what="the follower to take the lease",
        )
        result.takeover_seconds = time.time() - killed
    except TimeoutError:
        pass
    while time.time() < killed + size.watch_seconds:
        world.progress()
        time.sleep(2)
    world.settle(result, killed)
    judge_firings(world, result, began, killed, leader.pid, follower.pid)
    return result


def submit_steadily(world: World, count: int, seconds: float) -> None:
    start = time.time()
    for index in range(count):
        time.sleep(max(0.0, start + index * seconds / count - time.time()))
        world.submit(1)
        world.progress(f" (submitted {index + 1})")
    time.sleep(max(0.0, start + seconds - time.time()))


def judge_firings(
    world: World, result: TwoBeatsResult, began: float, killed: float, leader: int, follower: int
) -> None:
    """Every firing of a schedule is one beat's send (Celery's task-sent event, with the beat's
    pid). Two sends of one schedule closer than half its interval are one due time fired twice."""
    firings = [f for f in retrying(world.recorder.completed) if f.sent >= began]
    names = {leader: "leader", follower: "follower"}
    by_beat = Counter(
        f"{names.get(f.sender_pid, f'pid {f.sender_pid}')} "
        f"{'before' if f.sent < killed else 'after'} the kill"
        for f in firings
    )
    result.firings_by_beat = dict(sorted(by_beat.items()))
    for task, interval in SCHEDULES.values():
        sends = sorted(f.sent for f in firings if f.task == task)
        gaps = [b - a for a, b in itertools.pairwise(sends)]
        result.double_firings += sum(1 for gap in gaps if gap < interval / 2)
        if task == "runs.scan" and gaps:
            result.largest_scan_gap = max(gaps)
    after = [f.sent for f in firings if f.task == "runs.scan" and f.sent >= killed]
    result.first_firing_after_kill = (min(after) - killed) if after else None


SCENARIOS = {
    "a": kill_worker_children,
    "b": restart_whole_worker,
    "c": broker_down_at_submit,
    "d": broker_crash,
    "e": database_crash,
    "f": two_beats,
}


# -- The child process: one scenario ------------------------------------------------------------


def run_scenario(letter: str, size: Size, options: argparse.Namespace) -> Result:
    folder = Path(tempfile.mkdtemp(prefix=f"chaos-{letter}-"))
    lab = Lab(folder)
    world: World | None = None
    print(f"[{letter}] {TITLES[letter]}: {size}; folder {folder}", flush=True)
    try:
        prepare(letter, lab, folder)
        check_schedule_defaults()
        world = World(letter, size, lab, options.grace)
        return SCENARIOS[letter](world)
    finally:
        if world is not None:
            world.recorder.stop()
        lab.close()
        if not options.keep:
            drop_database(lab, DATABASE.format(letter))
            shutil.rmtree(folder, ignore_errors=True)


def prepare(letter: str, lab: Lab, folder: Path) -> None:
    """Broker (and database) first: the settings read their URLs when Django starts."""
    lab.redis.start()
    database = DATABASE.format(letter)
    if letter == "e":
        mariadb = lab.own_mariadb()
        mariadb.create_database(database)
        os.environ["DATABASE_URL"] = mariadb.url(database)
    else:  # the machine's MariaDB, whatever the caller's environment says
        os.environ["DATABASE_URL"] = f"mysql://root@127.0.0.1:3306/{database}"
    os.environ.update(
        CELERY_BROKER_URL=lab.redis.url,
        LOG_DIR=str(folder / "logs"),
        MEDIA_ROOT=str(folder / "media"),
    )
    configure(database, EXTRA_APPS="runs.tests.sleeper")
    if letter != "e":
        mysql(f"DROP DATABASE IF EXISTS `{database}`")
        mysql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    for command in (["migrate", "-v", "0"], ["sync_schedules"]):  # as `make run` / start_celery.sh
        manage(command)
    import django

    django.setup()
    for noisy in ("kombu", "httpx"):  # the firing recorder's reconnects, every API request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from runs.tests.sleeper.models import SleepRun

    install_transition_log(SleepRun._meta.db_table)


def manage(arguments: list[str]) -> None:
    done = subprocess.run(
        [PYTHON, "manage.py", *arguments], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {arguments[0]} failed: {done.stderr.strip()[-1500:]}")


def check_schedule_defaults() -> None:
    """The seeded intervals, not shortened: the bench measures what an operator gets."""
    from django_celery_beat.models import PeriodicTask

    for name, (task, seconds) in SCHEDULES.items():
        row = PeriodicTask.objects.get(name=name)
        every = row.interval.every if row.interval else None
        if row.task != task or every != seconds or not row.enabled:
            raise RuntimeError(f"schedule {name!r} is {row.task} every {every} s, not the default")


def drop_database(lab: Lab, name: str) -> None:
    from django.db import connections

    connections.close_all()
    if lab.mariadb is None:  # the own mariadbd's data goes with the folder
        mysql(f"DROP DATABASE IF EXISTS `{name}`")


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def child_main(options: argparse.Namespace) -> int:
    # Ctrl-C and TERM end the scenario through `finally`, which stops every process by pid.
    signal.signal(signal.SIGTERM, interrupted)
    letter = options.child
    size = (QUICK if options.quick else FULL)[letter]
    if options.runs:
        size = Size(options.runs, size.faults, size.beats_seconds, size.watch_seconds)
    try:
        result = run_scenario(letter, size, options)
    except Exception as exc:
        traceback.print_exc()
        result = Result(letter, TITLES[letter], error=f"{type(exc).__name__}: {exc}"[:300])
    Path(options.result).write_text(json.dumps({"kind": type(result).__name__, **asdict(result)}))
    return 0


# -- The parent: runs each scenario in a child, prints the table ---------------------------------


def run_child(letter: str, options: argparse.Namespace) -> Result:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = Path(handle.name)
    passed = [
        *(["--quick"] if options.quick else []),
        *(["--keep"] if options.keep else []),
        *(["--runs", str(options.runs)] if options.runs else []),
        "--grace",
        str(options.grace),
    ]
    child = subprocess.Popen([PYTHON, __file__, "--child", letter, "--result", str(path), *passed])
    try:
        child.wait()
    except KeyboardInterrupt:
        child.wait()  # it got the Ctrl-C too and is stopping its processes
        raise
    try:
        data = json.loads(path.read_text() or "{}")
        kind = RESULT_TYPES[data.pop("kind")]
        return kind(**{f.name: data[f.name] for f in fields(kind) if f.name in data})
    except (ValueError, KeyError):
        return Result(letter, TITLES[letter], error=f"the scenario exited {child.returncode}")
    finally:
        path.unlink(missing_ok=True)


def median_of(results: list[Result], name: str) -> float | None:
    values = [getattr(r, name) for r in results]
    if any(v is None for v in values):
        return None
    return statistics.median(values)


def table(by_letter: dict[str, list[Result]]) -> list[str]:
    lines = [
        "| scenario | submitted | succeeded | failed | lost | double terminal | duplicate effects "
        "| fault end -> all terminal (s) | bound (s) | targets |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for letter, results in by_letter.items():
        cells = [
            median_of(results, name)
            for name in (
                "submitted",
                "succeeded",
                "failed",
                "lost",
                "double_terminal",
                "duplicate_effects",
            )
        ]
        recovery = median_of(results, "recovery_seconds")
        bound = median_of(results, "budget_seconds") or 0
        missed = sorted({m for r in results for m in r.misses()})
        repeat = f" (median of {len(results)})" if len(results) > 1 else ""
        lines.append(
            f"| ({letter}) {TITLES[letter]}{repeat} | "
            + " | ".join("?" if c is None else f"{c:g}" for c in cells)
            + f" | {'never' if recovery is None else f'{recovery:.0f}'} | {bound:.0f} | "
            + ("met" if not missed else "MISSED: " + "; ".join(missed))
            + " |"
        )
    return lines


def report(by_letter: dict[str, list[Result]], options: argparse.Namespace) -> None:
    when = datetime.now().astimezone()
    print(
        f"\n{when:%Y-%m-%d %H:%M %Z} `bench/chaos.py {' '.join(sys.argv[1:])}`"
        f" ({'quick sizes' if options.quick else 'full sizes'}, {os.cpu_count()} cores)\n"
    )
    print("\n".join(table(by_letter)))
    for letter, results in by_letter.items():
        for index, result in enumerate(results):
            print(f"\n({letter}){f' run {index + 1}' if len(results) > 1 else ''}:")
            for line in result.details():
                print(f"  {line}")
            if result.error:
                print(f"  error: {result.error}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help="a b c d e f (default: all)"
    )
    parser.add_argument("--runs", type=int, help="runs per scenario instead of the default size")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario K times (medians)")
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_SECONDS,
        help="seconds after a fault's end (plus the work left) to wait for terminal",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--child", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from a b c d e f")
    return options


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    if options.child:
        return child_main(options)
    by_letter: dict[str, list[Result]] = {}
    try:
        for letter in options.scenarios or list(SCENARIOS):
            for _ in range(options.repeat):
                by_letter.setdefault(letter, []).append(run_child(letter, options))
    except KeyboardInterrupt:
        print("\nInterrupted; every scenario stopped its processes.", file=sys.stderr)
        report(by_letter, options)
        return 130
    report(by_letter, options)
    return 1 if any(r.misses() for results in by_letter.values() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
