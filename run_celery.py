#!/usr/bin/env python3
"""Operate the Celery side of the project: start, stop, watch and empty it.

    python run_celery.py both                      worker on every project queue + beat, detached
    python run_celery.py worker --concurrency 4    or: beat
    python run_celery.py status                    exit 0 healthy, 1 degraded, 2 down
    python run_celery.py stop [worker|beat] [--timeout S]
    python run_celery.py restart [worker|beat]
    python run_celery.py purge [--queue Q] [--yes]
    python run_celery.py monitor [--port P]        Flower on 127.0.0.1, else `celery events`
    python run_celery.py inspect active|scheduled|reserved|registered|stats|ping|conf
    python run_celery.py logs [worker|beat] [N] [--follow]

Detached processes keep a pid file and a size-rotated log under LOG_DIR (default logs/). Under
supervisor or systemd run Celery in the foreground instead (deploy/). docs/operations.md has more.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SERVICES = ("worker", "beat")
INSPECT_VERBS = ("active", "scheduled", "reserved", "registered", "stats", "ping", "conf")
HEALTHY, DEGRADED, DOWN = 0, 1, 2
LOG_MAX_BYTES = 10 * 1024 * 1024  # per file; the writer keeps LOG_BACKUPS older ones beside it
LOG_BACKUPS = 5


class OpsError(Exception):
    """A problem the operator can act on: printed as one sentence, never as a traceback."""

    def __init__(self, sentence: str, code: int = 1):
        super().__init__(sentence)
        self.code = code


# -- The interpreter and Django ------------------------------------------------------------------


def ensure_project_python() -> None:
    """Re-run this script with .venv's Python when the current one lacks the project's packages."""
    try:
        import celery  # noqa: F401
        import django  # noqa: F401
    except ImportError:
        if VENV_PYTHON.exists() and not os.environ.get("RUN_CELERY_REEXEC"):
            os.environ["RUN_CELERY_REEXEC"] = "1"  # .venv's python is a symlink: guard the loop
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
        raise OpsError(
            "Django and Celery are not installed for this Python and there is no .venv; "
            "run `make install` (or `pip install -r requirements.txt`) first."
        ) from None


def setup_django() -> None:
    from django.core.exceptions import ImproperlyConfigured

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    try:
        import django

        django.setup()
        # The operator reads this script's own sentences; library warnings (with tracebacks) from
        # a check that failed would bury them. Worker and beat log to their own files.
        logging.disable(logging.WARNING)
    except ImproperlyConfigured as exc:
        raise OpsError(f"The settings are not usable: {exc}.") from None


def celery_app():
    from web.celery import app

    return app


def log_dir() -> Path:
    from django.conf import settings

    path = Path(settings.LOG_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_path(name: str) -> Path:
    return log_dir() / f"{name}.pid"


def log_path(name: str) -> Path:
    return log_dir() / f"{name}.log"


def project_queues() -> list[str]:
    from django.conf import settings

    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def node_name() -> str:
    return f"worker@{socket.gethostname()}"


# -- Services: broker and database ---------------------------------------------------------------


def broker_error() -> str | None:
    """None if the broker accepts a connection, else why not."""
    from kombu.exceptions import OperationalError

    try:
        with celery_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except (OperationalError, OSError) as exc:
        return str(exc).rstrip(".")
    return None


def database_error() -> str | None:
    from django.db import DatabaseError, connection

    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        return str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
    return None


def redacted(url: str) -> str:
    """A URL without its password, fit for printing."""
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)


def require_broker() -> None:
    problem = broker_error()
    if problem:
        url = redacted(celery_app().conf.broker_url)
        raise OpsError(f"The broker at {url} cannot be reached ({problem}); start Redis first.")


def require_database() -> None:
    problem = database_error()
    if problem:
        raise OpsError(f"The database cannot be reached ({problem}); check DATABASE_URL.")


# -- Processes: pid files, liveness, memory ------------------------------------------------------


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


# -- Starting ------------------------------------------------------------------------------------


def worker_command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "web", "worker",
        "--hostname", node_name(),
        "--queues", args.queues or ",".join(project_queues()),
        "--concurrency", str(args.concurrency),
        "--pool", args.pool,
        "--loglevel", args.loglevel,
        "--pidfile", str(pid_path("worker")),
    ]  # fmt: skip


def beat_command(args: argparse.Namespace) -> list[str]:
    from django.conf import settings

    return [
        sys.executable, "-m", "celery", "-A", "web", "beat",
        "--scheduler", settings.CELERY_BEAT_SCHEDULER,
        "--loglevel", args.loglevel,
        "--pidfile", str(pid_path("beat")),
    ]  # fmt: skip


def refuse_if_running(name: str) -> None:
    pid = running_pid(name)
    if pid is not None:
        raise OpsError(f"{name} is already running (pid {pid}); stop it first with `stop {name}`.")


def spawn_detached(name: str, command: list[str]) -> subprocess.Popen:
    """Start `command` in a session of its own, its output piped into a size-rotating log writer.

    Celery's own --detach/--logfile would write nothing here: Django's LOGGING already gives the
    root logger a console handler, so Celery adds no file handler and the console goes to
    /dev/null. Piping the console into a writer keeps every line and rotates the file.
    """
    writer = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_log", str(log_path(name))],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=writer.stdin,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    writer.stdin.close()  # the service holds the pipe now; the writer ends when the service does
    return process


def wait_for_pid_file(name: str, process: subprocess.Popen, timeout: float = 60) -> None:
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


def wait_for_ping(timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node_name() in ping_workers(timeout=1):
            return True
    return False


def start_service(name: str, args: argparse.Namespace) -> int:
    refuse_if_running(name)
    command = worker_command(args) if name == "worker" else beat_command(args)
    process = spawn_detached(name, command)
    wait_for_pid_file(name, process)
    if name == "worker" and not wait_for_ping():
        print(f"worker started (pid {process.pid}) but answers no ping yet; see {log_path(name)}.")
        return DEGRADED
    print(f"{name} started (pid {process.pid}); log: {log_path(name)}")
    return HEALTHY


def cmd_start(args: argparse.Namespace, names: tuple[str, ...]) -> int:
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


def cmd_stop(args: argparse.Namespace) -> int:
    for name in reversed(chosen(args.service)):  # beat first: it stops feeding the worker
        stop_service(name, args.timeout)
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    names = chosen(args.service)
    require_broker()
    require_database()
    for name in reversed(names):
        stop_service(name, args.timeout)
    return cmd_start(args, names)


def chosen(service: str | None) -> tuple[str, ...]:
    return SERVICES if service in (None, "both") else (service,)


# -- Status --------------------------------------------------------------------------------------


def ping_workers(timeout: float = 1.0) -> list[str]:
    replies = celery_app().control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def queue_lengths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (a passive declare; a queue never used yet counts 0)."""
    from kombu.exceptions import ChannelError

    lengths = {}
    with celery_app().connection_for_write() as conn:
        for queue in queues:
            try:
                with conn.channel() as channel:  # a failed passive declare spoils its channel
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                lengths[queue] = 0
    return lengths


def runs_by_status() -> dict[str, dict[str, int]]:
    from django.db.models import Count

    from runs.models import run_models

    counts = {}
    for model in run_models():
        rows = model.objects.order_by().values_list("status").annotate(n=Count("pk"))
        counts[model._meta.label_lower] = dict(rows)
    return counts


def beat_age_seconds() -> float | None:
    """Seconds since the leading beat last ticked, or None if no beat ever ticked."""
    from django.utils import timezone

    from runs.beat import last_tick

    tick = last_tick()
    return None if tick is None else (timezone.now() - tick).total_seconds()


def beat_stale_after() -> float:
    from django.conf import settings

    # Beat ticks at least every max loop interval; three missed ticks means it is not ticking.
    return 3 * settings.CELERY_BEAT_MAX_LOOP_INTERVAL + 5


def cmd_status(args: argparse.Namespace) -> int:
    problems = [p for p in (broker_sentence(), database_sentence()) if p]
    for name in SERVICES:
        pid = running_pid(name)
        print(f"{name:9}{'running, ' + process_summary(pid) if pid else 'no pid file here'}")
    if problems:
        print("\n".join(problems))
        print("status: down")
        return DOWN
    workers = ping_workers()
    print(f"{'ping':9}{', '.join(workers) + ' answered' if workers else 'no worker answered'}")
    lengths = queue_lengths(project_queues())
    print(f"{'queues':9}{', '.join(f'{q} {n}' for q, n in lengths.items())}")
    age = beat_age_seconds()
    beat_ok = age is not None and age < beat_stale_after()
    print(f"{'tick':9}{'beat never ticked' if age is None else f'last tick {age:.0f} s ago'}")
    print_runs(runs_by_status())
    return verdict(bool(workers), beat_ok)


def broker_sentence() -> str | None:
    problem = broker_error()
    return (
        problem
        and f"{'broker':9}unreachable at {redacted(celery_app().conf.broker_url)} ({problem})"
    )


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


# -- Purge, inspect, monitor, logs ---------------------------------------------------------------


def cmd_purge(args: argparse.Namespace) -> int:
    queues = project_queues()
    if args.queue and args.queue not in queues:
        raise OpsError(f"--queue must be one of {', '.join(queues)}, not {args.queue!r}.", 2)
    queues = [args.queue] if args.queue else queues
    require_broker()
    waiting = sum(queue_lengths(queues).values())
    if waiting and not args.yes:
        confirm(f"Delete {waiting} waiting message(s) from {', '.join(queues)}?")
    purged = purge_queues(queues)
    print(f"Purged {purged} message(s) from {', '.join(queues)}.")
    print(
        f"Runs are not deleted: the {queued_runs()} run(s) now queued keep their rows, and the "
        "scan dispatches a queued run that never started again once it has waited "
        "requeue_after_seconds (an hour by default); the admin's re-dispatch action sends one now."
    )
    return 0


def confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise OpsError("purge asks for confirmation; pass --yes (or -f) when not at a terminal.")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise OpsError("Nothing purged.")


def queued_runs() -> int:
    from runs.models import RunStatus, run_models

    return sum(model.objects.filter(status=RunStatus.QUEUED).count() for model in run_models())


def purge_queues(queues: list[str]) -> int:
    """What `celery purge -Q` does, counted per queue (Redis purges every priority level)."""
    from kombu.exceptions import ChannelError

    purged = 0
    with celery_app().connection_for_write() as conn:
        for queue in queues:
            try:
                with conn.channel() as channel:
                    purged += channel.queue_purge(queue) or 0
            except ChannelError:
                pass  # a queue that was never declared holds nothing
    return purged


def cmd_inspect(args: argparse.Namespace) -> int:
    """Celery's own `inspect`, after a broker check that turns a dead broker into one sentence."""
    require_broker()
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "web",
        "inspect",
        args.what,
        "--timeout",
        str(args.timeout),
    ]
    return subprocess.run(command, cwd=ROOT).returncode


def cmd_monitor(args: argparse.Namespace) -> int:
    require_broker()
    import importlib.util

    if importlib.util.find_spec("flower") is None:
        print("Flower is not installed; showing `celery events` instead.")
        return exec_celery(["events"])
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if ":" not in auth:
        raise OpsError(
            "Set FLOWER_BASIC_AUTH=user:password first: Flower shows task arguments and can revoke."
        )
    state = log_dir() / "flower.db"
    print(f"Flower on http://127.0.0.1:{args.port}/ (state in {state}); Ctrl-C stops it.")
    # Flower reads FLOWER_BASIC_AUTH from the environment itself: no password in `ps` output.
    return exec_celery([
        "flower", "--address=127.0.0.1", f"--port={args.port}",
        "--persistent=True", f"--db={state}", "--state_save_interval=60000",
    ])  # fmt: skip


def exec_celery(arguments: list[str]) -> int:
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", "web", *arguments])
    return 0  # not reached


def cmd_logs(args: argparse.Namespace) -> int:
    names = chosen(args.service)
    paths = [log_path(name) for name in names if log_path(name).exists()]
    if not paths:
        raise OpsError(f"No log yet in {log_dir()}; start the {' and '.join(names)} first.")
    if args.follow:
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *map(str, paths)])
    for path in paths:
        if len(paths) > 1:
            print(f"==> {path} <==")
        print("\n".join(path.read_text(errors="replace").splitlines()[-args.lines :]))
    return 0


def write_log(path: str) -> None:
    """The hidden `_log` verb: copy stdin to a size-rotated file until the service closes it."""
    from logging.handlers import RotatingFileHandler

    handler = RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.terminator = ""  # each line keeps its own newline
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        handler.emit(logging.makeLogRecord({"msg": line.decode("utf-8", "replace")}))
    handler.close()


# -- Command line --------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence and exit 2, instead of argparse's usage dump
        raise OpsError(f"{message[0].upper()}{message[1:]}; see `run_celery.py --help`.", 2)


def positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {raw!r}")
    return int(raw)


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), not {raw!r}")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog="run_celery.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser, metavar="verb")
    for verb, helptext in (("worker", "start a detached worker"), ("beat", "start a detached beat"),
                           ("both", "start a worker on every queue and beat"),
                           ("restart", "stop, then start again")):  # fmt: skip
        sub = verbs.add_parser(verb, help=helptext)
        if verb == "restart":
            sub.add_argument("service", nargs="?", choices=(*SERVICES, "both"), default="both")
            sub.add_argument(
                "--timeout", type=seconds, default=60, help="warm-shutdown bound, seconds"
            )
        add_start_options(sub)
    verbs.add_parser("status", help="processes, ping, queues, beat's last tick, runs; exit 0/1/2")
    stop = verbs.add_parser("stop", help="warm shutdown, then kill after --timeout")
    stop.add_argument("service", nargs="?", choices=(*SERVICES, "both"), default="both")
    stop.add_argument("--timeout", type=seconds, default=60, help="seconds to wait before killing")
    purge = verbs.add_parser("purge", help="empty the project's queues")
    purge.add_argument("--queue", help="only this queue")
    purge.add_argument("--yes", "-f", action="store_true", help="do not ask")
    monitor = verbs.add_parser("monitor", help="Flower on 127.0.0.1 (or `celery events`)")
    monitor.add_argument("--port", type=positive_int, default=5555)
    inspect = verbs.add_parser("inspect", help="Celery's inspect on every worker")
    inspect.add_argument("what", choices=INSPECT_VERBS)
    inspect.add_argument("--timeout", type=seconds, default=2)
    logs = verbs.add_parser("logs", help="the last lines of the worker and beat logs")
    logs.add_argument("service", nargs="?", choices=(*SERVICES, "both"), default="both")
    logs.add_argument("lines", nargs="?", type=positive_int, default=50)
    logs.add_argument("--follow", action="store_true")
    return parser


def add_start_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--concurrency", type=positive_int, default=os.cpu_count() or 2)
    sub.add_argument("--loglevel", default="INFO", type=str.upper,
                     choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))  # fmt: skip
    sub.add_argument("--queues", help="comma-separated; default every project queue")
    sub.add_argument(
        "--pool", default="prefork", choices=("prefork", "solo", "threads", "gevent", "eventlet")
    )


def dispatch(args: argparse.Namespace) -> int:
    if args.queues if hasattr(args, "queues") else False:
        unknown = set(args.queues.split(",")) - set(project_queues())
        if unknown:
            raise OpsError(f"--queues has unknown queue(s) {', '.join(sorted(unknown))}; "
                           f"the project's are {', '.join(project_queues())}.", 2)  # fmt: skip
    handlers = {
        "worker": lambda: cmd_start(args, ("worker",)),
        "beat": lambda: cmd_start(args, ("beat",)),
        "both": lambda: cmd_start(args, SERVICES),
        "restart": lambda: cmd_restart(args),
        "stop": lambda: cmd_stop(args),
        "status": lambda: cmd_status(args),
        "purge": lambda: cmd_purge(args),
        "inspect": lambda: cmd_inspect(args),
        "monitor": lambda: cmd_monitor(args),
        "logs": lambda: cmd_logs(args),
    }
    return handlers[args.verb]()


def main(argv: list[str]) -> int:
    if argv[:1] == ["_log"]:
        write_log(argv[1])
        return 0
    try:
        ensure_project_python()
        args = build_parser().parse_args(argv)
        setup_django()
        return dispatch(args)
    except OpsError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except Exception as exc:  # the last resort: still one sentence, with the cause named
        if os.environ.get("RUN_CELERY_DEBUG"):
            raise
        hint = "RUN_CELERY_DEBUG=1 shows the traceback"
        print(f"{args_verb(argv)} failed: {unexpected(exc)} ({hint}).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


def args_verb(argv: list[str]) -> str:
    return next((arg for arg in argv if not arg.startswith("-")), "run_celery.py")


def unexpected(exc: Exception) -> str:
    """Name the failing service for what an operator meets: a broker or database gone mid-way."""
    from django.db import DatabaseError
    from kombu.exceptions import OperationalError

    first_line = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(".")
    if isinstance(exc, DatabaseError):
        return f"the database answered {first_line!r}; is it migrated (`manage.py migrate`)?"
    if isinstance(exc, OperationalError | ConnectionError):
        return f"the broker connection failed ({first_line})"
    return f"{type(exc).__name__}: {first_line}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
