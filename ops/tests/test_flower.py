"""Flower as `run_celery.py monitor` and the systemd unit start it: credentials required and never
empty, /metrics and /healthcheck behind the same login, `--read-only` refusing operations.
A real Flower on a free port, against a Redis of the test's own."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from ops.flower import basic_auth_problem
from ops.testing import PYTHON, ROOT, RedisServer, ServiceProcess, free_port, service_env, wait_for

PASSWORD = "a-long-flower-password"


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, env=service_env(**env), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("credentials", "flaw"),
    [
        (":", "it has an empty user name"),
        ("ops:", "it has an empty password"),
        (":" + PASSWORD, "it has an empty user name"),
        ("ops: ", "it has an empty password"),
        ("ops", "it has no colon between the user name and the password"),
        (f"ops:{PASSWORD},:", "entry 2 has an empty user name"),
    ],
)
def test_empty_credentials_are_refused(credentials, flaw):
    result = run(
        [PYTHON, "run_celery.py", "monitor", "--port", str(free_port())],
        FLOWER_BASIC_AUTH=credentials,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "FLOWER_BASIC_AUTH must be user:password (several separated by commas) with neither "
        f"part empty, but {flaw}."
    ]
    assert PASSWORD not in result.stderr and "Flower on" not in result.stdout


def test_missing_credentials_are_refused():
    assert basic_auth_problem("") == basic_auth_problem([""]) is not None
    assert basic_auth_problem(f"ops:{PASSWORD}") is None
    assert basic_auth_problem(["ops:a", "ci:b"]) is None


@pytest.mark.parametrize("credentials", [":", None])
def test_flower_started_directly_refuses_them_too(credentials):
    """The systemd unit runs `celery flower --conf=deploy/flowerconfig.py` itself."""
    env = service_env()
    env.pop("FLOWER_BASIC_AUTH", None)
    if credentials is not None:
        env["FLOWER_BASIC_AUTH"] = credentials
    command = [PYTHON, "-m", "celery", "-A", "web", "flower", "--conf=deploy/flowerconfig.py"]
    result = subprocess.run(
        [*command, f"--port={free_port()}", "--address=127.0.0.1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "FLOWER_BASIC_AUTH" in result.stderr


@pytest.fixture
def flower(tmp_path):
    """`run_celery.py monitor --read-only` on a free port, against a Redis of the test's own."""
    broker = RedisServer().start()
    port = free_port()
    process = ServiceProcess(
        [PYTHON, "run_celery.py", "monitor", "--port", str(port), "--read-only"],
        service_env(
            CELERY_BROKER_URL=broker.url,
            FLOWER_BASIC_AUTH=f"ops:{PASSWORD}",
            LOG_DIR=str(tmp_path),
        ),
        "flower",
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"Flower exited:\n{process.log()[-3000:]}")
        try:
            httpx.get(f"{base}/healthcheck", timeout=2)
            return True
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=60, what="Flower to answer")
        yield base
    finally:
        process.stop()
        broker.stop()


def test_metrics_and_healthcheck_need_the_login(flower):
    login = ("ops", PASSWORD)
    for path in ("/metrics", "/healthcheck", "/api/workers", "/"):
        assert httpx.get(flower + path, timeout=10).status_code == 401, path
        wrong = httpx.get(flower + path, auth=("ops", "not-the-password"), timeout=10)
        assert wrong.status_code == 401, path
        assert httpx.get(flower + path, auth=login, timeout=10).status_code == 200, path
    metrics = httpx.get(f"{flower}/metrics", auth=login, timeout=10)
    assert "flower_events_total" in metrics.text or "# HELP" in metrics.text
    assert httpx.get(f"{flower}/healthcheck", auth=login, timeout=10).text == "OK"


def test_read_only_refuses_operations(flower):
    login = ("ops", PASSWORD)
    for path in (
        "/api/task/revoke/0b7f0ad0-5c57-4f43-9f43-1d7a3c0e1f00",
        "/api/task/async-apply/x",
    ):
        refused = httpx.post(flower + path, auth=login, json={}, timeout=10)
        assert refused.status_code == 403, (path, refused.text)
        assert "Read only" in refused.text
        assert httpx.post(flower + path, json={}, timeout=10).status_code == 401
