"""run_celery.py and start_celery.sh, run as an operator would: real processes, a Redis of the
test's own, the test database, and LOG_DIR in a temporary directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from celery import current_app

from ops.commandline import (
    GENERATION_WORKER,
    SYSTEM_CONCURRENCY,
    SYSTEM_QUEUE,
    SYSTEM_WORKER,
    generation_queues,
)
from ops.testing import PYTHON, ROOT, RedisServer, service_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PLAIN_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or PYTHON


class Ops:
    """The scripts against one Redis and one log directory."""

    def __init__(self, broker: RedisServer, log_dir: Path):
        self.broker = broker
        self.log_dir = log_dir
        self.env = service_env(CELERY_BROKER_URL=broker.url, LOG_DIR=str(log_dir))

    def run(self, *args: str, python: str = PYTHON, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [python, str(ROOT / "run_celery.py"), *args],
            cwd=ROOT, env={**self.env, **env}, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def shell(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ROOT / "start_celery.sh"), *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def pid(self, name: str) -> int | None:
        path = self.log_dir / f"{name}.pid"
        return int(path.read_text()) if path.exists() else None

    def pids(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in SERVICES}

    def healthy_status(self) -> subprocess.CompletedProcess | None:
        result = self.run("status")
        return result if result.returncode == 0 else None

    def waiting(self, queue: str) -> int:
        """Messages in a queue, read from Redis itself (every priority list of it)."""
        client = redis.Redis.from_url(self.broker.url)
        keys = [queue, *(f"{queue}:{level}" for level in range(10))]
        return sum(client.llen(key) for key in keys if client.type(key) == b"list")

    def send(self, queue: str) -> None:
        with current_app.connection_for_write(url=self.broker.url) as conn:
            current_app.send_task("nothing.consumes.this", queue=queue, connection=conn)


SERVICES = (GENERATION_WORKER, SYSTEM_WORKER, "beat")  # what `both` starts, by pid file name


def field(output: str, label: str) -> str:
    """The text after a label in `status` output (the label column is padded)."""
    for line in output.splitlines():
        head, _, rest = line.partition(" ")
        if head == label:
            return rest.strip()
    raise AssertionError(f"no {label!r} line in:\n{output}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    listed = subprocess.run(["ps", "-A", "-o", "pgid=,stat="], capture_output=True, text=True)
    return any(
        int(group) == pgid and not stat.startswith("Z")
        for group, stat in (line.split() for line in listed.stdout.splitlines())
    )


def one_sentence(result: subprocess.CompletedProcess) -> str:
    """The error a failing verb printed: one line on stderr, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def ops(tmp_path):
    broker = RedisServer().start()
    ops = Ops(broker, tmp_path / "logs")
    yield ops
    for name in SERVICES:  # never leave a process behind, even when a test failed
        pid = ops.pid(name)
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)
    broker.stop()


def test_both_status_purge_restart_and_stop_through_the_scripts(ops):
    started = ops.shell("both", "--concurrency", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    for name in SERVICES:
        assert f"{name} started (pid" in started.stdout, started.stdout
    assert f"queues {','.join(generation_queues())})" in started.stdout
    assert f"queues {SYSTEM_QUEUE})" in started.stdout
    first = ops.pids()
    assert all(first.values()) and len(set(first.values())) == 3
    assert all(alive(pid) for pid in first.values() if pid)
    assert "ready." in (ops.log_dir / f"{SYSTEM_WORKER}.log").read_text()

    status = wait_for(ops.healthy_status, timeout=60, what="status to say healthy")
    assert "status: healthy" in status.stdout
    # Two nodes answer: the generation worker without `system`, the system worker on it alone.
    ping = field(status.stdout, "ping")
    assert ping.endswith("answered") and f"({SYSTEM_QUEUE})" in ping
    assert f"({', '.join(sorted(generation_queues()))})" in ping
    for name in SERVICES:
        assert field(status.stdout, name).startswith("running, pid")
    assert field(status.stdout, "queues").startswith(f"{SYSTEM_QUEUE} 0")
    assert "last tick" in status.stdout and "runs           sleeper.sleeprun" in status.stdout

    again = ops.run("both")
    assert "worker is already running" in one_sentence(again)
    assert ops.pid("worker") == first["worker"]

    stopped = ops.run("stop", "worker", "--timeout", "30")  # `worker`: both worker nodes
    assert "worker stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert f"{SYSTEM_WORKER} stopped" in stopped.stdout, stopped.stdout
    for name in (GENERATION_WORKER, SYSTEM_WORKER):
        pid = first[name]
        assert pid and not alive(pid) and not group_alive(pid)
    assert first["beat"] and alive(first["beat"])
    for queue in ("podcast", "video", "video", "celery"):
        ops.send(queue)
    assert ops.waiting("video") == 2

    degraded = ops.run("status")
    assert degraded.returncode == 1, degraded.stdout
    assert "no worker answered" in degraded.stdout and "video 2" in degraded.stdout

    purged = ops.run("purge", "--yes")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    count = int(purged.stdout.split("Purged ")[1].split()[0])
    assert count >= 4  # beat may have added a maintenance message to `system` meanwhile
    assert "Runs are not deleted" in purged.stdout
    assert [ops.waiting(q) for q in ("podcast", "video", "celery")] == [0, 0, 0]

    restarted = ops.run("restart", "--concurrency", "1", "--timeout", "30")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    second = ops.pids()
    assert second["beat"] != first["beat"] and not alive(first["beat"])
    assert all(pid and alive(pid) for pid in second.values())
    wait_for(ops.healthy_status, timeout=60, what="status to say healthy after restart")

    registered = ops.run("inspect", "registered")  # Celery's own inspect, through the script
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert "podcast.generate" in registered.stdout and "runs.scan" in registered.stdout

    logs = ops.run("logs", "worker", "200")
    assert "ready." in logs.stdout  # the worker's own output reached its rotating log

    final = ops.shell("stop", "--timeout", "30")
    assert final.returncode == 0, final.stdout + final.stderr
    for name in SERVICES:
        assert f"{name} stopped" in final.stdout, final.stdout
    assert not any(alive(pid) or group_alive(pid) for pid in second.values() if pid)
    assert not list(ops.log_dir.glob("*.pid"))


def test_worker_with_queues_is_one_node_and_status_names_a_queue_nobody_consumes(ops):
    """An explicit --queues bypasses the two-node layout: one node on exactly those queues."""
    started = ops.run("worker", "--queues", ",".join(generation_queues()), "--concurrency", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    assert ops.pid(GENERATION_WORKER) and ops.pid(SYSTEM_WORKER) is None

    status = ops.run("status")
    assert status.returncode == 1, status.stdout  # degraded: beat is not running either
    assert f"no worker consumes {SYSTEM_QUEUE}: maintenance does not run" in status.stdout
    assert field(status.stdout, "consumers") == f"no worker consumes {SYSTEM_QUEUE}"

    stopped = ops.run("stop", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "worker stopped" in stopped.stdout
    assert f"{SYSTEM_WORKER} is not running." in stopped.stdout


def test_a_stale_pid_file_is_noticed_and_removed(ops):
    ops.log_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (ops.log_dir / "worker.pid").write_text(f"{gone.pid}\n")

    status = ops.run("status")
    assert "Removed a stale pid file for worker" in status.stdout
    assert not (ops.log_dir / "worker.pid").exists()
    assert status.returncode == 2  # nothing runs: no worker answers and beat never ticked
    assert "status: down" in status.stdout

    stopped = ops.run("stop")
    assert stopped.returncode == 0
    assert "worker is not running." in stopped.stdout


def test_a_plain_python_without_the_packages_re_executes_itself_in_the_venv(ops):
    plain = subprocess.run([PLAIN_PYTHON, "-c", "import django"], capture_output=True)
    if plain.returncode == 0:
        pytest.skip("this machine's plain python3 has Django installed")
    result = ops.run("status", python=PLAIN_PYTHON)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no worker answered" in result.stdout


def test_every_verb_says_one_sentence_when_the_broker_is_down(ops):
    ops.broker.stop()
    for verb in (["both"], ["worker"], ["purge", "--yes"], ["inspect", "ping"], ["restart"]):
        sentence = one_sentence(ops.run(*verb))
        assert "cannot be reached" in sentence and "start Redis" in sentence, sentence
    status = ops.run("status")
    assert status.returncode == 2
    assert field(status.stdout, "broker").startswith("unreachable")
    assert "Traceback" not in status.stderr
    assert not (ops.log_dir / "worker.pid").exists()


def test_bad_arguments_and_a_missing_database_get_one_sentence(ops):
    cases = {
        ("worker", "--concurrency", "0"): "--concurrency",
        ("purge", "--queue", "nope"): "--queue must be one of",
        ("stop", "--timeout", "soon"): "--timeout",
        ("inspect", "everything"): "invalid choice",
        ("worker", "--queues", "podcast,nope"): "unknown queue",
        ("restart", SYSTEM_WORKER, "--queues", "system"): "one worker node on those queues",
        ("frobnicate",): "invalid choice",
    }
    for args, expected in cases.items():
        result = ops.run(*args)
        assert expected in one_sentence(result), (args, result.stderr)
        assert result.returncode == 2

    no_database = {"DATABASE_URL": "mysql://root@127.0.0.1:1/nothing"}
    refused = ops.run("both", **no_database)
    assert "The database cannot be reached" in one_sentence(refused)
    status = ops.run("status", **no_database)
    assert status.returncode == 2 and field(status.stdout, "database").startswith("unreachable")
    assert "Traceback" not in status.stdout + status.stderr


def test_deploy_units_match_the_settings():
    """Supervisor and systemd run the two worker nodes of the layout (queues, node names, the
    system worker's processes), wait out the hard limits, and beat runs the settings' scheduler."""
    import configparser

    from django.conf import settings

    from ops.commandline import worker_layout

    layout = {node.name: node for node in worker_layout(concurrency=4)}
    assert set(layout) == {GENERATION_WORKER, SYSTEM_WORKER}
    stop_bound = {
        GENERATION_WORKER: settings.LONGEST_HARD_LIMIT,
        SYSTEM_WORKER: settings.TASK_TIME_LIMITS[SYSTEM_QUEUE][1],
    }
    programs = {GENERATION_WORKER: "mediaruns_worker", SYSTEM_WORKER: "mediaruns_system_worker"}
    units = {GENERATION_WORKER: "mediaruns-worker", SYSTEM_WORKER: "mediaruns-system-worker"}

    supervisor = configparser.RawConfigParser()
    supervisor.read(ROOT / "deploy" / "supervisor" / "mediaruns.conf")
    in_group = supervisor["group:mediaruns"]["programs"].split(",")
    for name, node in layout.items():
        program = supervisor[f"program:{programs[name]}"]
        assert programs[name] in in_group
        assert int(program["stopwaitsecs"]) >= stop_bound[name]
        assert program["killasgroup"] == "true" and program["stopasgroup"] == "false"
        assert f"--queues {','.join(node.queues)} " in program["command"]
        assert f"--hostname {node.prefix}@" in program["command"]
    assert (
        f"--concurrency {SYSTEM_CONCURRENCY} "
        in supervisor[f"program:{programs[SYSTEM_WORKER]}"]["command"]
    )
    assert (
        f"--scheduler {settings.CELERY_BEAT_SCHEDULER}"
        in supervisor["program:mediaruns_beat"]["command"]
    )

    for name, node in layout.items():
        unit = (ROOT / "deploy" / "systemd" / f"{units[name]}.service").read_text()
        timeout = next(line for line in unit.splitlines() if line.startswith("TimeoutStopSec="))
        assert int(timeout.split("=")[1]) >= stop_bound[name]
        assert "KillMode=mixed" in unit and f"--queues {','.join(node.queues)} " in unit
        assert f"--hostname {node.prefix}@%H" in unit
        if name == SYSTEM_WORKER:
            assert f"--concurrency {SYSTEM_CONCURRENCY} " in unit
    beat = (ROOT / "deploy" / "systemd" / "mediaruns-beat.service").read_text()
    assert f"--scheduler {settings.CELERY_BEAT_SCHEDULER}" in beat
