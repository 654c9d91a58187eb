"""`run_celery.py beat` and `start_celery.sh beat` report a beat that dies right after it
started (its pid file already written) instead of saying "started"."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ops.testing import PYTHON, ROOT, RedisServer, service_env

pytestmark = pytest.mark.django_db(transaction=True)

DYING = "runs.tests.sleeper,schedules.tests.dying_beat"


@pytest.fixture
def broker():
    server = RedisServer().start()
    yield server
    server.stop()


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def stop_beat(log_dir: Path) -> None:
    """Kill the beat this test started (the leader of its own session), if it still runs."""
    pid_file = log_dir / "beat.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)


BEAT_COMMANDS = [
    [PYTHON, str(ROOT / "run_celery.py"), "beat"],
    [str(ROOT / "start_celery.sh"), "beat"],
]


@pytest.mark.parametrize("command", BEAT_COMMANDS)
def test_a_beat_that_dies_at_start_is_reported_with_its_log(broker, tmp_path, command):
    log_dir = tmp_path / "logs"
    env = service_env(CELERY_BROKER_URL=broker.url, LOG_DIR=str(log_dir), EXTRA_APPS=DYING)
    try:
        result = run(command, env)
    finally:
        stop_beat(log_dir)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "beat exited at start" in result.stderr, output
    assert "dying_beat: this beat exits at start" in result.stderr, output  # the log's tail
    assert "started (pid" not in result.stdout, output


def test_a_healthy_beat_is_reported_started(broker, tmp_path):
    log_dir = tmp_path / "logs"
    env = service_env(CELERY_BROKER_URL=broker.url, LOG_DIR=str(log_dir))
    try:
        result = run([PYTHON, str(ROOT / "run_celery.py"), "beat"], env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "beat started (pid" in result.stdout
        assert os.kill(int((log_dir / "beat.pid").read_text()), 0) is None  # still alive
    finally:
        stop_beat(log_dir)
