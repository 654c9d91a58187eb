"""Starting and stopping worker and beat: detached, with pid files, warm shutdown then kill."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time

from celery import current_app
from kombu.utils.url import maybe_sanitize_url

from ops.checks import broker_error, database_error, ping_workers
from ops.commandline import beat_command, worker_command

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
    wait_for_pid_file,
)

# An operator waits a little longer than a health check: three seconds and one retry.
BROKER_TIMEOUT_SECONDS = 3
BROKER_RETRIES = 1


def node_name() -> str:
    return f"worker@{socket.gethostname()}"


def broker_url() -> str:
    """The broker's URL without its password, fit for printing."""
    return str(maybe_sanitize_url(current_app.conf.broker_url))


def broker_problem() -> str | None:
    return broker_error(timeout=BROKER_TIMEOUT_SECONDS, retries=BROKER_RETRIES)


def require_broker() -> None:
    problem = broker_problem()
    if problem:
        raise OpsError(
            f"The broker at {broker_url()} cannot be reached ({problem}); start Redis first."
        )


def require_database() -> None:
    problem = database_error()
    if problem:
        raise OpsError(f"The database cannot be reached ({problem}); check DATABASE_URL.")


# -- Starting ------------------------------------------------------------------------------------


def service_command(name: str, args: argparse.Namespace) -> list[str]:
    if name == "beat":
        return beat_command(loglevel=args.loglevel, pidfile=pid_path("beat"))
    return worker_command(
        hostname=node_name(),
        queues=args.queues.split(",") if args.queues else None,
        concurrency=args.concurrency,
        pool=args.pool,
        loglevel=args.loglevel,
        pidfile=pid_path("worker"),
    )


def refuse_if_running(name: str) -> None:
    pid = running_pid(name)
    if pid is not None:
        raise OpsError(f"{name} is already running (pid {pid}); stop it first with `stop {name}`.")


def wait_for_ping(timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node_name() in ping_workers(timeout=1):
            return True
    return False


def start_service(name: str, args: argparse.Namespace) -> int:
    refuse_if_running(name)
    process = spawn_detached(name, service_command(name, args))
    wait_for_pid_file(name, process)
    if name == "worker" and not wait_for_ping():
        print(f"worker started (pid {process.pid}) but answers no ping yet; see {log_path(name)}.")
        return DEGRADED
    print(f"{name} started (pid {process.pid}); log: {log_path(name)}")
    return HEALTHY


def start(args: argparse.Namespace, names: tuple[str, ...]) -> int:
    require_broker()
    require_database()
    for name in names:  # refuse before starting anything, so `both` never half-starts
        refuse_if_running(name)
    return max(start_service(name, args) for name in names)


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


def stop(args: argparse.Namespace) -> int:
    for name in reversed(chosen(args.service)):  # beat first: it stops feeding the worker
        stop_service(name, args.timeout)
    return 0


def restart(args: argparse.Namespace) -> int:
    names = chosen(args.service)
    require_broker()
    require_database()
    for name in reversed(names):
        stop_service(name, args.timeout)
    return start(args, names)
