"""Starting and stopping the worker nodes and beat: detached, with pid files, warm shutdown then
kill. The worker nodes are ops.commandline.worker_layout's: the generation worker and the system
worker, or one node on an explicit `--queues`."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from dataclasses import dataclass

from celery import current_app
from kombu.utils.url import maybe_sanitize_url

from ops.checks import broker_error, database_error, ping_workers
from ops.commandline import GENERATION_WORKER, SYSTEM_WORKER, beat_command, worker_layout

from .errors import DEGRADED, HEALTHY, OpsError
from .processes import (
    chosen,
    group_alive,
    is_alive,
    kill_group,
    log_path,
    pid_path,
    running_pid,
    spawn_detached,
    stays_up,
    wait_for_pid_file,
)

# An operator waits a little longer than a health check: three seconds and one retry.
BROKER_TIMEOUT_SECONDS = 3
BROKER_RETRIES = 1
BEAT_SETTLE_SECONDS = 2  # a beat that dies within this of writing its pid file was not started


def node_name(prefix: str = "worker") -> str:
    """A worker node's Celery name on this machine: worker@host, system@host."""
    return f"{prefix}@{socket.gethostname()}"


def broker_url() -> str:
    """The broker's URL without its password, fit for printing."""
    return str(maybe_sanitize_url(current_app.conf.broker_url))


def broker_kind() -> str:
    return "Redis" if current_app.conf.broker_url.startswith("redis") else "RabbitMQ"


def broker_problem() -> str | None:
    return broker_error(timeout=BROKER_TIMEOUT_SECONDS, retries=BROKER_RETRIES)


def require_broker() -> None:
    problem = broker_problem()
    if problem:
        raise OpsError(
            f"The broker at {broker_url()} cannot be reached ({problem}); start {broker_kind()} "
            "first."
        )


def require_database() -> None:
    problem = database_error()
    if problem:
        raise OpsError(f"The database cannot be reached ({problem}); check DATABASE_URL.")


# -- Starting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A service about to start: its command line and, for a worker node, its Celery node name."""

    name: str
    command: list[str]
    node: str | None = None
    queues: tuple[str, ...] = ()


def plan(args: argparse.Namespace, names: tuple[str, ...]) -> list[Planned]:
    """What starting `names` means under the options: the worker nodes of the layout (both, or
    one node on `--queues`), then beat."""
    queues = args.queues.split(",") if args.queues else None
    if queues and names == (SYSTEM_WORKER,):
        raise OpsError(
            f"--queues starts one worker node on those queues; use `worker --queues`, not "
            f"{SYSTEM_WORKER}.",
            2,
        )
    planned = [
        Planned(
            node.name,
            node.command(
                hostname=node_name(node.prefix), loglevel=args.loglevel, pidfile=pid_path(node.name)
            ),
            node_name(node.prefix),
            node.queues,
        )
        for node in worker_layout(concurrency=args.concurrency, queues=queues, pool=args.pool)
        if node.name in names
    ]
    if "beat" in names:
        command = beat_command(loglevel=args.loglevel, pidfile=pid_path("beat"))
        planned.append(Planned("beat", command))
    return planned


def refuse_if_running(name: str) -> None:
    pid = running_pid(name)
    if pid is not None:
        raise OpsError(f"{name} is already running (pid {pid}); stop it first with `stop {name}`.")


def wait_for_ping(nodes: set[str], timeout: float = 60) -> set[str]:
    """Wait until every node in `nodes` answers a ping; return those that never did."""
    deadline = time.monotonic() + timeout
    silent = set(nodes)
    while silent and time.monotonic() < deadline:
        silent -= set(ping_workers(timeout=1))
    return silent


def start(args: argparse.Namespace, names: tuple[str, ...]) -> int:
    """Start the services (refusing before starting anything if one already runs, so `both`
    never half-starts); wait for each pid file, then for every worker node's ping."""
    require_broker()
    require_database()
    planned = plan(args, names)
    for service in planned:
        refuse_if_running(service.name)
    started = {}
    for service in planned:
        process = spawn_detached(service.name, service.command)
        wait_for_pid_file(service.name, process)
        if service.node is None:  # beat answers no ping: see that it survives loading its schedule
            stays_up(service.name, process, BEAT_SETTLE_SECONDS)
        started[service.name] = process.pid
    silent = wait_for_ping({service.node for service in planned if service.node})
    for service in planned:
        pid, log = started[service.name], log_path(service.name)
        queues = f", queues {','.join(service.queues)}" if service.queues else ""
        if service.node in silent:
            print(f"{service.name} started (pid {pid}{queues}) but answers no ping yet; see {log}.")
        else:
            print(f"{service.name} started (pid {pid}{queues}); log: {log}")
    return DEGRADED if silent else HEALTHY


# -- Stopping ------------------------------------------------------------------------------------


def stop_service(name: str, timeout: float) -> None:
    """Warm shutdown (TERM: running tasks finish), bounded by `timeout`, then KILL the group."""
    pid = running_pid(name)
    if pid is None:
        print(f"{name} is not running.")
        return
    pgid = os.getpgid(pid)
    os.kill(pid, signal.SIGTERM)
    print(f"Stopping {name} (pid {pid}): warm shutdown, waiting up to {timeout:.0f} s...")
    started = time.monotonic()
    while time.monotonic() - started < timeout and is_alive(pid):
        time.sleep(0.2)
    if is_alive(pid) or (pgid == pid and group_alive(pgid)):
        kill_group(pid, pgid)
        print(
            f"{name} did not stop within {timeout:.0f} s; killed it and its children. Runs it held "
            "stay running until their heartbeat goes stale, then the timeout check takes them up."
        )
    else:
        print(f"{name} stopped in {time.monotonic() - started:.1f} s.")
    pid_path(name).unlink(missing_ok=True)


def stop_order(names: tuple[str, ...]) -> list[str]:
    """Beat first (it stops feeding the workers), the system worker last (maintenance goes on
    while the generation worker lets its renders finish)."""
    return [name for name in ("beat", GENERATION_WORKER, SYSTEM_WORKER) if name in names]


def stop(args: argparse.Namespace) -> int:
    for name in stop_order(chosen(args.service)):
        stop_service(name, args.timeout)
    return 0


def restart(args: argparse.Namespace) -> int:
    names = chosen(args.service)
    require_broker()
    require_database()
    plan(args, names)  # a bad combination of options is refused before anything stops
    for name in stop_order(names):
        stop_service(name, args.timeout)
    return start(args, names)
