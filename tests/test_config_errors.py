"""A configuration error is one sentence on stderr and a non-zero exit, never a traceback, from
every entry point: manage.py, run_celery.py, the `celery` command, gunicorn with the shipped
configuration, and the WSGI/ASGI modules (web/startup.py)."""

from __future__ import annotations

import subprocess

import pytest

from ops.testing import PYTHON, ROOT, free_port

# Not the suite's environment: only what a fresh shell on a server would have.
BASE = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:////tmp/config-errors.sqlite3"}
NO_SECRET_KEY = {"DEBUG": "false", "SECRET_KEY": ""}
PROBLEMS = {
    "no SECRET_KEY with DEBUG off": (NO_SECRET_KEY, "SECRET_KEY must be set when DEBUG is off"),
    "a bad DEBUG": ({"DEBUG": "maybe"}, "DEBUG must be true or false, not 'maybe'"),
    "a bad whole number": (
        {"DEBUG": "true", "RUN_MAX_ATTEMPTS": "three"},
        "RUN_MAX_ATTEMPTS must be a whole number, not 'three'",
    ),
    "a task route without a queue": (
        {"DEBUG": "true", "TASK_QUEUE_ROUTES": "video.compose"},
        "TASK_QUEUE_ROUTES must be task=queue pairs, not 'video.compose'",
    ),
    "a database URL without a scheme": (
        {"DEBUG": "true", "DATABASE_URL": "db.example.com/media"},
        "DATABASE_URL must look like mysql://user:password@host:3306/name or "
        "sqlite:////path/to/db.sqlite3, and this one has no scheme",
    ),
}
ENTRY_POINTS = {
    "manage.py check": ([PYTHON, "manage.py", "check"], 2),
    "run_celery.py status": ([PYTHON, "run_celery.py", "status"], 2),
    "celery inspect ping": ([PYTHON, "-m", "celery", "-A", "web", "inspect", "ping"], 2),
    "gunicorn": ([PYTHON, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"], 2),
    # Inside a gunicorn worker: gunicorn's "the application failed to load", so the master stops.
    "web.wsgi": ([PYTHON, "-c", "import web.wsgi"], 4),
    "web.asgi": ([PYTHON, "-c", "import web.asgi"], 4),
}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, env={**BASE, "PORT": str(free_port()), **env},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def assert_one_sentence(result: subprocess.CompletedProcess, problem: str, code: int) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip().splitlines() == [f"The settings are not usable: {problem}."]
    assert result.returncode == code


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_missing_secret_key_is_one_sentence_everywhere(entry):
    command, code = ENTRY_POINTS[entry]
    assert_one_sentence(
        run(command, NO_SECRET_KEY), PROBLEMS["no SECRET_KEY with DEBUG off"][1], code
    )


@pytest.mark.parametrize(
    "problem", [name for name in PROBLEMS if name != "no SECRET_KEY with DEBUG off"]
)
@pytest.mark.parametrize("entry", ["manage.py check", "run_celery.py status"])
def test_bad_values_are_one_sentence(entry, problem):
    command, code = ENTRY_POINTS[entry]
    env, sentence = PROBLEMS[problem]
    assert_one_sentence(run(command, env), sentence, code)


def test_the_database_password_is_never_repeated():
    result = run(
        ENTRY_POINTS["manage.py check"][0],
        {"DEBUG": "true", "DATABASE_URL": "oracle-ish://media:s3cret-pass@db/media"},
    )
    assert result.returncode == 2
    assert "oracle-ish://" in result.stderr and "s3cret-pass" not in result.stderr
