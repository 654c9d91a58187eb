"""Real services for tests: the generic helpers live in `ops.testing` (next to the command lines
they start processes with); the suite imports them from here or from there."""

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

__all__ = [
    "PYTHON",
    "ROOT",
    "RedisServer",
    "ServiceProcess",
    "database_url",
    "free_port",
    "redis_server_binary",
    "service_env",
    "start_beat",
    "start_web",
    "start_worker",
    "wait_for",
]
