"""Real services for tests and benches: a Redis of the test's own, a RabbitMQ vhost of the test's
own, and the project's own workers, beat and web server in subprocesses (started from
ops.commandline, as run_celery.py starts them).

`start_worker` starts one node (on every project queue by default: quick, and what most tests
need); `start_workers` starts the production layout, the generation worker and the system worker.

The suite's helpers (`runs.tests.helpers` re-exports them) and bench/ use these.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from kombu import Connection
from kombu import pools as kombu_pools
from kombu.exceptions import ChannelError, OperationalError

from .commandline import (
    GENERATION_WORKER,
    SYSTEM_WORKER,
    asgi_command,
    beat_command,
    redis_server_command,
    worker_command,
    worker_layout,
)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 30, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until `predicate()` is truthy and return its value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url() -> str:
    """The URL of the database this test process uses (the test database, once set up)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    engine = "mysql" if db["ENGINE"].endswith("mysql") else "postgres"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"{engine}://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=database_url(), PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


@contextmanager
def broker_of(url: str) -> Iterator[None]:
    """Point this process's Celery app at the broker `url` for the block: `dispatch`, the outbox,
    `send_task` and the checks all publish there, with that broker's transport options and
    priority order (runs/routing.py reads the URL); the connection and producer pools are made
    anew on the way in and out."""
    app = current_app
    previous, previous_env = app.conf.broker_url, os.environ.get("CELERY_BROKER_URL")
    previous_options = app.conf.broker_transport_options

    def switch(to: str, env: str | None) -> None:
        # The app's pool is kombu's global pool for its URL, shared with the producer pools:
        # closing it alone leaves them holding a closed pool ("Acquire on closed pool") for every
        # later test. Reset closes every pool and forgets them, so fresh ones are made on demand.
        kombu_pools.reset()
        # Celery reads CELERY_BROKER_URL from the environment ahead of its configuration.
        if env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = env
        app.conf.broker_url = to
        app.conf.broker_transport_options = (
            previous_options if to == previous else transport_options_for(to)
        )
        app._pool = None
        app.amqp._producer_pool = None

    switch(url, url if previous_env is not None else None)
    try:
        yield
    finally:
        switch(previous, previous_env)


def transport_options_for(url: str) -> dict:
    """The settings' transport options for the broker `url` names (Redis or RabbitMQ)."""
    if url.startswith(("redis://", "rediss://")):
        return settings.REDIS_TRANSPORT_OPTIONS
    return settings.AMQP_TRANSPORT_OPTIONS


# -- RabbitMQ --------------------------------------------------------------------------------------

# The machine's RabbitMQ (CI has one at 127.0.0.1:5672, guest/guest); TEST_AMQP_URL overrides it.
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def amqp_test_url() -> str:
    return os.environ.get("TEST_AMQP_URL") or DEFAULT_AMQP_URL


def redis_beside(broker_url: str) -> dict[str, str]:
    """The environment a process on a RabbitMQ broker must be given: this process's Redis for
    the cache and the events (on a Redis broker both default to the broker's)."""
    if broker_url.startswith(("redis://", "rediss://")):
        return {}
    return {"CACHE_URL": settings.CACHE_URL, "EVENTS_REDIS_URL": settings.EVENTS_REDIS_URL}


def amqp_url_problem(url: str) -> str | None:
    """None if RabbitMQ accepts a connection at `url`, else why not."""
    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=0, timeout=3)
    except (OperationalError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


@contextmanager
def rabbitmq_vhost(base_url: str, name: str) -> Iterator[str]:
    """The URL of a vhost of the caller's own on the RabbitMQ at `base_url` (made and deleted with
    rabbitmqctl, so no queue is shared with anyone); `base_url` itself, its queues emptied, when
    rabbitmqctl cannot make one (not on this machine, or not allowed)."""
    vhost = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    user = urlsplit(base_url).username or "guest"
    try:
        made = rabbitmqctl("add_vhost", vhost).returncode == 0
        made = (
            made
            and rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*").returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        made = False
    if not made:
        purge_project_queues(base_url)
        yield base_url
        return
    try:
        yield urlunsplit(urlsplit(base_url)._replace(path=f"/{vhost}"))
    finally:
        rabbitmqctl("delete_vhost", vhost)


def purge_project_queues(url: str) -> None:
    """Empty the project's queues at `url`, so no message of an earlier run is delivered."""
    with Connection(url) as conn:
        for queue in settings.CELERY_TASK_QUEUES:
            queue(conn.default_channel).declare()
            conn.default_channel.queue_purge(queue.name)


def amqp_waiting(url: str, queue: str) -> int:
    """Messages ready in `queue` on the RabbitMQ at `url`, read with a passive declare (0 for a
    queue not declared yet)."""
    with Connection(url) as conn, conn.channel() as channel:
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            return 0


def redis_server_binary() -> str:
    return redis_server_command(0)[0]


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may stop and start.

    It keeps nothing on disk, unless `data_dir` is given: then it keeps an append-only file
    there (as `make run` and production do), and a restart finds what a crash left.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        command = redis_server_command(self.port, data_dir=self.data_dir)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._pings(client), timeout=10, what="redis-server to answer")
        return self

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to write anything more."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class ServiceProcess:
    """A project process (worker, beat, web) in a subprocess, with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], name: str):
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def wait_until_logged(self, line: str, what: str) -> None:
        """Wait for `line` in the output; fail with the output's tail if the process exits."""
        wait_for(
            lambda: line in self.log() or self.process.poll() is not None,
            timeout=60,
            what=what,
        )
        if self.process.poll() is not None:
            raise AssertionError(f"{what}: the process exited:\n{self.log()[-3000:]}")


def start_worker(
    broker_url: str, *, concurrency: int = 2, queues: str | None = None, **env: str
) -> ServiceProcess:
    """A real prefork Celery worker, on every project queue unless `queues` (comma-separated)
    names some, ready when it says so. The command line is run_celery.py's."""
    command = worker_command(
        concurrency=concurrency,
        queues=queues.split(",") if queues else None,
        hostname=f"test-{os.getpid()}-{free_port()}@%h",
        extra=("--without-gossip", "--without-mingle"),
    )
    worker = ServiceProcess(command, service_env(CELERY_BROKER_URL=broker_url, **env), "worker")
    worker.wait_until_logged("ready.", "the worker to start")
    return worker


class Workers:
    """The worker nodes of the production layout (`start_workers`): `generation` consumes every
    project queue but `system`, `system` consumes `system` alone."""

    def __init__(self, nodes: dict[str, ServiceProcess]):
        self.nodes = nodes

    @property
    def generation(self) -> ServiceProcess:
        return self.nodes[GENERATION_WORKER]

    @property
    def system(self) -> ServiceProcess:
        return self.nodes[SYSTEM_WORKER]

    def log(self) -> str:
        """Both nodes' output, the generation worker's first."""
        return "".join(node.log() for node in self.nodes.values())

    def stop(self, timeout: float = 20) -> None:
        for node in self.nodes.values():
            node.stop(timeout)


def start_workers(broker_url: str, *, concurrency: int = 2, **env: str) -> Workers:
    """The generation worker (`concurrency` prefork processes) and the system worker, as
    `run_celery.py worker` starts them (ops.commandline.worker_layout), both ready."""
    unique = f"test-{os.getpid()}-{free_port()}"
    service_environment = service_env(CELERY_BROKER_URL=broker_url, **env)
    nodes = {
        node.name: ServiceProcess(
            node.command(
                hostname=f"{node.prefix}-{unique}@%h",
                extra=("--without-gossip", "--without-mingle"),
            ),
            service_environment,
            node.name,
        )
        for node in worker_layout(concurrency=concurrency)
    }
    workers = Workers(nodes)
    try:
        for name, node in nodes.items():
            node.wait_until_logged("ready.", f"the {name} node to start")
    except BaseException:
        workers.stop()
        raise
    return workers


def start_beat(broker_url: str, name: str = "beat", **env: str) -> ServiceProcess:
    """A real beat with the project's scheduler (as run_celery.py starts it), on the test DB."""
    beat = ServiceProcess(beat_command(), service_env(CELERY_BROKER_URL=broker_url, **env), name)
    beat.wait_until_logged("beat: Starting", f"{name} to start")
    return beat


def start_web(broker_url: str, **env: str) -> tuple[ServiceProcess, str]:
    """The real Django development server; returns it and its base URL."""
    port = free_port()
    web = ServiceProcess(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        service_env(CELERY_BROKER_URL=broker_url, **env),
        "web",
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(answers, timeout=30, what="the web server to listen")
    return web, base


def start_asgi(broker_url: str, **env: str) -> tuple[ServiceProcess, str]:
    """The app under the ASGI server (uvicorn, as `make run` and the events service start it),
    which the live event streams need; returns it and its base URL once it answers."""
    port = free_port()
    web = ServiceProcess(
        asgi_command(port), service_env(CELERY_BROKER_URL=broker_url, **env), "asgi"
    )
    web.wait_until_logged("Uvicorn running on", "the ASGI server to start")
    return web, f"http://127.0.0.1:{port}"
