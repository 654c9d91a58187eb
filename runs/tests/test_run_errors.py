"""A failed run tells its owner why in a sentence; the traceback stays for staff (issue 11,
point 5)."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from runs.api import readable_error, without_paths
from runs.models import RunStatus
from runs.tests.sleeper.models import SleepRun

pytestmark = pytest.mark.django_db

RUNS = "/api/test/sleep-runs/"
TRACEBACK = """Traceback (most recent call last):
  File "/srv/mediaruns/runs/lifecycle.py", line 301, in execute
    result = steps(ctx)
  File "/srv/mediaruns/podcast/steps.py", line 120, in speak
    raise EngineError(f"unknown voice {voice!r}")
engines.errors.EngineError: unknown voice 'xx' in /srv/mediaruns/engines/speech.py
"""


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user("carol", password="x-long-pw-7", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


def failed_run(owner, message: str, error: str) -> SleepRun:
    return SleepRun.objects.create(
        owner=owner, status=RunStatus.FAILED, message=message, error=error
    )


def test_the_owner_reads_a_sentence_and_staff_the_traceback(api, staff_api, user):
    run = failed_run(user, "speaking line 3 (Bob) failed: unknown voice 'xx'", TRACEBACK)

    mine = api.get(f"{RUNS}{run.pk}/").json()
    assert mine["error"] == "Speaking line 3 (Bob) failed: unknown voice 'xx'."
    assert mine["message"] == "speaking line 3 (Bob) failed: unknown voice 'xx'"
    listed = api.get(RUNS).json()["results"][0]
    assert listed["error"] == mine["error"]

    theirs = staff_api.get(f"{RUNS}{run.pk}/").json()
    assert theirs["error"] == TRACEBACK
    assert theirs["message"] == run.message


def test_no_server_path_or_traceback_reaches_the_owner(api, user):
    run = failed_run(
        user,
        "[Errno 2] No such file or directory: '/tmp/mediaruns/run-1/line-3.wav'",
        "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/mediaruns/run-1/line-3.wav'",
    )
    body = api.get(f"{RUNS}{run.pk}/").json()
    for field in ("error", "message"):
        assert "/tmp" not in body[field] and "mediaruns" not in body[field], body[field]
    assert body["error"] == "[Errno 2] No such file or directory: '[server path]'."
    assert "FileNotFoundError" not in body["error"]


def test_a_traceback_without_a_message_gives_its_last_line_without_paths(api, user):
    run = failed_run(user, "", TRACEBACK)
    body = api.get(f"{RUNS}{run.pk}/").json()
    assert body["error"] == "Unknown voice 'xx' in [server path]."
    assert "Traceback" not in body["error"] and "File " not in body["error"]


def test_a_run_that_did_not_fail_has_no_error_and_urls_are_kept(api, user):
    run = SleepRun.objects.create(
        owner=user, status=RunStatus.QUEUED, message="Retrying in 5s: https://api.example.com/v1/x"
    )
    body = api.get(f"{RUNS}{run.pk}/").json()
    assert body["error"] == ""
    assert body["message"] == "Retrying in 5s: https://api.example.com/v1/x"


def test_readable_error_rules():
    assert readable_error("", "") == ""
    assert readable_error("", "No attempt finished; the worker was lost each time.") == (
        "No attempt finished; the worker was lost each time."
    )
    assert readable_error("Gave up after 3 attempts.", TRACEBACK) == "Gave up after 3 attempts."
    assert readable_error("", "x" * 1000).endswith("…")
    assert len(readable_error("", "word " * 500)) <= 300
    assert without_paths(r"at C:\app\media\x.mp3 and /a/b") == "at [server path] and [server path]"
    assert without_paths("see http://host:8000/api/docs/ or /health") == (
        "see http://host:8000/api/docs/ or /health"
    )
