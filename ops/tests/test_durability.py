"""Broker durability is configured, not hoped for (issue 10, point 6): production's Redis settings
(deploy/redis/mediaruns.conf) and `make run`'s embedded Redis keep an append-only file, so queued
run messages survive a broker crash. Real redis-server processes on free ports."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from ops.management.commands import devserver
from ops.testing import ROOT, RedisServer, broker_of, free_port, redis_server_binary, wait_for
from runs import broker, lifecycle
from runs.maintenance import queue_names
from runs.tests.sleeper.models import SleepRun

REDIS_CONF = ROOT / "deploy" / "redis" / "mediaruns.conf"


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def durability(client: redis.Redis) -> dict:
    settings: dict = {}
    for name in ("appendonly", "appendfsync", "maxmemory-policy"):
        settings.update(client.config_get(name))
    return settings


def test_the_deploy_redis_settings_are_durable_and_redis_server_accepts_them(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), str(REDIS_CONF), "--port", str(port), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: answers(client) or server.poll() is not None, timeout=10, what="redis")
        assert server.poll() is None, "redis-server refused deploy/redis/mediaruns.conf"
        assert durability(client) == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def aof_holds(data_dir: Path, needle: str) -> bool:
    """Whether an append-only file under `data_dir` (Redis 7 keeps several) holds `needle`."""
    return any(needle.encode() in path.read_bytes() for path in data_dir.rglob("*.aof"))


@pytest.mark.django_db(transaction=True)
def test_queued_run_messages_survive_a_crash_of_an_append_only_redis(tmp_path, user):
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(data_dir=data_dir).start()
    try:
        with broker_of(server.url):
            runs = [SleepRun.objects.create(owner=user) for _ in range(5)]
            assert all(lifecycle.dispatch(run) for run in runs)
            task_ids = {run.task_id for run in SleepRun.objects.filter(pk__in=[r.pk for r in runs])}
            wait_for(
                lambda: all(aof_holds(data_dir, task_id) for task_id in task_ids),
                timeout=10,
                what="the append-only file to hold the messages",
            )

            server.kill()  # SIGKILL: no shutdown save, no last fsync
            server.start()

            # The scan's own view of the broker: every message is still there, none to re-send.
            held = broker.held_task_ids(queue_names(), recent_seconds=20)
            assert held is not None and task_ids <= held
    finally:
        server.stop()


def test_make_runs_embedded_redis_keeps_an_append_only_file_under_the_project(
    tmp_path, settings, monkeypatch
):
    assert devserver.REDIS_DATA_DIR.is_relative_to(settings.BASE_DIR)
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(devserver.REDIS_DATA_DIR / "appendonly.aof")],
            cwd=ROOT,
        )
        assert ignored.returncode == 0, "the embedded Redis's folder is not git-ignored"

    port = free_port()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
    settings.LOG_DIR = tmp_path / "logs"
    settings.LOG_DIR.mkdir()
    monkeypatch.setattr(devserver, "REDIS_DATA_DIR", tmp_path / "redis")
    output = io.StringIO()
    process = devserver.Command(stdout=output).ensure_redis()  # nothing answers on that port
    assert process is not None
    try:
        client = redis.Redis(port=port)
        assert durability(client)["appendonly"] == "yes"
        assert durability(client)["appendfsync"] == "everysec"
        assert client.config_get("dir")["dir"] == str(tmp_path / "redis")
        assert "append-only file" in output.getvalue()
    finally:
        process.terminate()
        process.wait(timeout=10)
