"""Production settings: loud on bad values, clean under `check --deploy`."""

from __future__ import annotations

import subprocess

from runs.tests.helpers import PYTHON, ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789abcdef",
    "ALLOWED_HOSTS": "media.example.com",
    "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    "PATH": "/usr/bin:/bin",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_reports_nothing_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_missing_secret_key_in_production_is_a_clear_error():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_bad_boolean_names_the_variable():
    result = manage("check", **{**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'" in result.stderr


def test_the_site_root_leads_to_the_api_docs(client):
    reply = client.get("/", HTTP_HOST="127.0.0.1")
    assert reply.status_code == 302
    assert reply["Location"] == "/api/docs/"


def test_a_task_moved_to_another_queue_keeps_its_priority_level():
    shown = manage(
        "shell",
        "-c",
        "from runs.routing import route_task as r; "
        "print(r('runs.maintenance.scan', [], {}, {})); print(r('video.compose', [], {}, {}))",
        **{
            **PRODUCTION,
            "DEBUG": "true",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "TASK_QUEUE_ROUTES": "runs.maintenance.scan=ops_b,video.compose=video_b",
        },
    )
    assert shown.returncode == 0, shown.stderr
    # Redis serves 0 first: maintenance's top level is 0, generation's normal level 4.
    assert shown.stdout.splitlines()[-2:] == [
        "{'queue': 'ops_b', 'priority': 0}",
        "{'queue': 'video_b', 'priority': 4}",
    ]
