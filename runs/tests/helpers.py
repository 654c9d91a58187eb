"""Real services for tests: the generic helpers live in `ops.testing` (next to the command lines
they start processes with); the suite imports them from here or from there."""

import threading

import pytest
from django.db import connection

from ops.testing import (
    PYTHON,
    ROOT,
    RedisServer,
    ServiceProcess,
    database_url,
    free_port,
    redis_server_binary,
    service_env,
    start_beat,
    start_web,
    start_worker,
    wait_for,
)

# A test that takes the `broker` fixture (conftest.py), run on Redis and on RabbitMQ.
both_brokers = pytest.mark.parametrize("broker", ["redis", "amqp"], indirect=True)

__all__ = [
    "PYTHON",
    "ROOT",
    "RedisServer",
    "ServiceProcess",
    "both_brokers",
    "database_url",
    "free_port",
    "redis_server_binary",
    "service_env",
    "start_beat",
    "start_web",
    "start_worker",
    "wait_for",
]


def in_threads(count: int, work) -> list:
    """Run `work` in `count` threads released at once, each on its own database connection."""
    barrier, results = threading.Barrier(count), []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
