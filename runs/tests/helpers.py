"""Real services for tests: the generic helpers live in `ops.testing` (next to the command lines
they start processes with); the suite imports them from here or from there."""

import pytest

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
