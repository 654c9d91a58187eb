"""Processes: pid and log files under LOG_DIR, liveness, process groups, the detached spawn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from ops.commandline import GENERATION_WORKER, SYSTEM_WORKER

from .errors import OpsError

# The worker nodes (the generation worker and the system worker: ops.commandline.worker_layout),
# then beat. Each is a service with a pid file and a log of its own.
WORKERS = (GENERATION_WORKER, SYSTEM_WORKER)
SERVICES = (*WORKERS, "beat")
# What a verb's optional service argument accepts: `worker` means both worker nodes.
SERVICE_CHOICES = ("worker", SYSTEM_WORKER, "beat", "both")


def chosen(service: str | None) -> tuple[str, ...]:
    """The services a verb's optional `worker|worker_system|beat|both` argument names (all by
    default; `worker` is both worker nodes, `worker_system` the system worker alone)."""
    if service in (None, "both"):
        return SERVICES
    return WORKERS if service == GENERATION_WORKER else (service,)


def log_dir() -> Path:
    path = Path(settings.LOG_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_path(name: str) -> Path:
    return log_dir() / f"{name}.pid"


def log_path(name: str) -> Path:
    return log_dir() / f"{name}.log"


def read_pid(name: str) -> int | None:
    try:
        return int(pid_path(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, but not ours to judge
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def is_celery(pid: int) -> bool:
    """Whether a live pid is a Celery process: a stale file's pid may belong to anything now."""
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True
    )
    return "celery" in result.stdout


def running_pid(name: str, *, quiet: bool = False) -> int | None:
    """The pid of a running service; a pid file left by a dead process is removed, and said so."""
    pid = read_pid(name)
    path = pid_path(name)
    if pid is not None and is_alive(pid) and is_celery(pid):
        return pid
    if path.exists():
        path.unlink(missing_ok=True)
        if not quiet:
            print(f"Removed a stale pid file for {name} ({path}: no process {pid or '?'} runs).")
    return None


def group_processes(pgid: int) -> list[tuple[int, int, str]]:
    """(pid, rss kB, elapsed) of every process in a process group, via ps (Linux and macOS)."""
    result = subprocess.run(
        ["ps", "-A", "-o", "pid=,pgid=,rss=,etime="], capture_output=True, text=True
    )
    rows = []
    for line in result.stdout.splitlines():
        pid, group, rss, elapsed = line.split()
        if int(group) == pgid:
            rows.append((int(pid), int(rss), elapsed))
    return rows


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(not is_zombie(pid) for pid, _, _ in group_processes(pgid))


def process_summary(pid: int) -> str:
    rows = group_processes(os.getpgid(pid)) or [(pid, 0, "?")]
    elapsed = next((e for p, _, e in rows if p == pid), rows[0][2])
    memory_mb = sum(rss for _, rss, _ in rows) / 1024
    return f"pid {pid}, up {elapsed}, {memory_mb:.0f} MB in {len(rows)} process(es)"


def spawn_detached(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Start `command` in a session of its own, its output piped into a size-rotating log writer.

    Celery's own --detach/--logfile would write nothing here: Django's LOGGING already gives the
    root logger a console handler, so Celery adds no file handler and the console goes to
    /dev/null. Piping the console into a writer (`run_celery.py _log`) keeps every line and
    rotates the file.
    """
    entry = Path(settings.BASE_DIR) / "run_celery.py"
    writer = subprocess.Popen(
        [sys.executable, str(entry), "_log", str(log_path(name))],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert writer.stdin is not None  # stdin=PIPE
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=writer.stdin,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    writer.stdin.close()  # the service holds the pipe now; the writer ends when the service does
    return process


def wait_for_pid_file(name: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while read_pid(name) != process.pid:
        if process.poll() is not None:
            tail = "\n".join(log_path(name).read_text(errors="replace").splitlines()[-15:])
            print(tail, file=sys.stderr)
            raise OpsError(
                f"{name} exited at start (code {process.returncode}); see {log_path(name)}."
            )
        if time.monotonic() > deadline:
            raise OpsError(
                f"{name} did not write its pid file within {timeout:.0f} s; see {log_path(name)}."
            )
        time.sleep(0.2)


def stays_up(name: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    """Watch a started service for `seconds` more: beat writes its pid file before it loads its
    schedule, and a beat that dies then must be reported, not called started."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log_path(name).read_text(errors="replace").splitlines()[-15:])
            print(tail, file=sys.stderr)
            raise OpsError(
                f"{name} exited at start (code {process.returncode}); see {log_path(name)}."
            )
        time.sleep(0.2)


def kill_group(pid: int, pgid: int) -> None:
    try:
        if pgid == pid:  # started by us in a session of its own: the pool children go too
            os.killpg(pgid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
