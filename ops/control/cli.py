"""Operate the Celery side of the project: start, stop, watch and empty it.

    python run_celery.py both                      the two worker nodes + beat, detached
    python run_celery.py worker --concurrency 4    or: beat
    python run_celery.py worker --queues video     one worker node on exactly those queues
    python run_celery.py status                    exit 0 healthy, 1 degraded, 2 down
    python run_celery.py stop [worker|worker_system|beat] [--timeout S]
    python run_celery.py restart [worker|worker_system|beat]
    python run_celery.py purge [--queue Q] [--yes]
    python run_celery.py monitor [--port P] [--read-only]  Flower on 127.0.0.1 (or `celery events`)
    python run_celery.py inspect active|scheduled|reserved|registered|stats|ping|conf
    python run_celery.py logs [worker|worker_system|beat] [N] [--follow]

Two worker nodes: `worker` consumes every project queue but `system` (--concurrency processes),
`worker_system` consumes `system` alone, so maintenance never waits behind generation work.
`worker` as a service name means both nodes.

Detached processes keep a pid file and a size-rotated log under LOG_DIR (default logs/). Under
supervisor or systemd run Celery in the foreground instead (deploy/). docs/operations.md has more.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

import django
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from kombu.exceptions import OperationalError

from .errors import OpsError
from .processes import SERVICE_CHOICES

INSPECT_VERBS = ("active", "scheduled", "reserved", "registered", "stats", "ping", "conf")


def main(argv: list[str], *, debug: bool = False) -> int:
    """Run one verb; every failure is one sentence on stderr and a non-zero exit code."""
    try:
        args = build_parser().parse_args(argv)
        setup_django()
        # The verbs read the run models, which the app registry only serves from here on.
        from .verbs import dispatch

        return dispatch(args)
    except OpsError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except Exception as exc:  # the last resort: still one sentence, with the cause named
        if debug:
            raise
        hint = "RUN_CELERY_DEBUG=1 shows the traceback"
        print(f"{args_verb(argv)} failed: {unexpected(exc)} ({hint}).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise OpsError(f"The settings are not usable: {exc}.") from None
    # The operator reads this script's own sentences; library warnings (with tracebacks) from
    # a check that failed would bury them. Worker and beat log to their own files.
    logging.disable(logging.WARNING)


def args_verb(argv: list[str]) -> str:
    return next((arg for arg in argv if not arg.startswith("-")), "run_celery.py")


def unexpected(exc: Exception) -> str:
    """Name the failing service for what an operator meets: a broker or database gone mid-way."""
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(".")
    if isinstance(exc, DatabaseError):
        return f"the database answered {first_line!r}; is it migrated (`manage.py migrate`)?"
    if isinstance(exc, OperationalError | ConnectionError):
        return f"the broker connection failed ({first_line})"
    return f"{type(exc).__name__}: {first_line}"


# -- The command line ----------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one sentence and exit 2, not argparse's usage
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
    for verb, helptext in (("worker", "start the two worker nodes (one with --queues), detached"),
                           ("beat", "start a detached beat"),
                           ("both", "start the two worker nodes and beat"),
                           ("restart", "stop, then start again")):  # fmt: skip
        sub = verbs.add_parser(verb, help=helptext)
        if verb == "restart":
            sub.add_argument("service", nargs="?", choices=SERVICE_CHOICES, default="both")
            sub.add_argument(
                "--timeout", type=seconds, default=60, help="warm-shutdown bound, seconds"
            )
        add_start_options(sub)
    verbs.add_parser("status", help="processes, ping, queues, beat's last tick, runs; exit 0/1/2")
    stop = verbs.add_parser("stop", help="warm shutdown, then kill after --timeout")
    stop.add_argument("service", nargs="?", choices=SERVICE_CHOICES, default="both")
    stop.add_argument("--timeout", type=seconds, default=60, help="seconds to wait before killing")
    purge = verbs.add_parser("purge", help="empty the project's queues")
    purge.add_argument("--queue", help="only this queue")
    purge.add_argument("--yes", "-f", action="store_true", help="do not ask")
    monitor = verbs.add_parser("monitor", help="Flower on 127.0.0.1 (or `celery events`)")
    monitor.add_argument("--port", type=positive_int, default=5555)
    monitor.add_argument(
        "--read-only", action="store_true", help="Flower watches only: no revoke, no pool changes"
    )
    inspect = verbs.add_parser("inspect", help="Celery's inspect on every worker")
    inspect.add_argument("what", choices=INSPECT_VERBS)
    inspect.add_argument("--timeout", type=seconds, default=2)
    logs = verbs.add_parser("logs", help="the last lines of the worker and beat logs")
    logs.add_argument("service", nargs="?", choices=SERVICE_CHOICES, default="both")
    logs.add_argument("lines", nargs="?", type=positive_int, default=50)
    logs.add_argument("--follow", action="store_true")
    return parser


def add_start_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--concurrency",
        type=positive_int,
        default=os.cpu_count() or 2,
        help="the generation worker's processes (the system worker keeps its own few)",
    )
    sub.add_argument("--loglevel", default="INFO", type=str.upper,
                     choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))  # fmt: skip
    sub.add_argument(
        "--queues",
        help="comma-separated: one worker node on exactly these queues instead of the two nodes",
    )
    sub.add_argument(
        "--pool",
        default="prefork",
        choices=("prefork", "solo", "threads", "gevent", "eventlet"),
        help="the generation worker's pool (the system worker stays prefork: hard time limits)",
    )
