"""The OpenAPI schema tells the truth (issue 11, point 9): Schemathesis, against the real web
server on the real database and Redis, over every operation of /api/schema/ — a user's token for
all but the schedules, a staff token for the schedules and again for the profiles and metrics
(which users may only read) — finds no server error and no answer that the schema does not
describe (status codes, media types, headers, bodies).

Bounded: SCHEMATHESIS_MAX_EXAMPLES examples per operation (default 5) in the examples, coverage
and fuzzing phases; about a minute per run on two cores. The path ids are pinned to rows made
here (a finished podcast and video with files, a source, a schedule), so the detail endpoints
answer with real data and their bodies are checked too. Whether the API accepts all valid data
or refuses all invalid data (positive_data_acceptance, negative_data_rejection) is not checked:
the schema cannot say which source ids exist or that a prompt and a script exclude each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token

from ops.testing import start_web
from podcast.models import EpisodeProfile, PodcastResult, PodcastRun, Source, SpeakerProfile
from podcast.profiles import seed_profiles
from runs.models import RunStatus
from schedules.seeding import sync_schedules
from video.models import CharacterImage, VideoResult, VideoRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

ST = str(Path(sys.executable).with_name("st"))
EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5")
SEED = os.environ.get("SCHEMATHESIS_SEED", "20261201")
STAFF_PATHS = "^/api/(schedules|episode-profiles|speaker-profiles|metrics)"
TRACEBACK = 'Traceback (most recent call last):\n  File "/srv/x.py", line 1\nValueError: bad\n'


def media(name: str, content: bytes) -> str:
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return name


def make_world(user, staff) -> dict[str, object]:
    """Rows for the pinned path parameters, and a failed run for the lists."""
    seed_profiles()
    sync_schedules()
    source = Source.objects.create(owner=user, title="Bees", content="Bees dance. " * 20)
    profiles = {
        "episode_profile": EpisodeProfile.objects.get(slug="default"),
        "speaker_profile": SpeakerProfile.objects.get(slug="default"),
    }
    podcast = PodcastRun.objects.create(
        owner=user,
        status=RunStatus.SUCCEEDED,
        episode_name="Done",
        task_id=str(uuid.uuid4()),
        sources_snapshot=[{"id": source.pk, "title": source.title}],
        **profiles,
    )
    podcast.sources.set([source])
    PodcastResult.objects.create(
        run=podcast,
        audio=media(f"podcasts/{podcast.pk}.mp3", b"ID3" + bytes(200)),
        duration_seconds=1.5,
        outline=[{"title": "Bees", "points": ["They dance."]}],
        transcript=[{"speaker": "Alex", "text": "Hi.", "start": 0.0, "end": 1.0}],
        processing_time_seconds=0.5,
    )
    PodcastRun.objects.create(
        owner=user,
        status=RunStatus.FAILED,
        episode_name="Broken",
        message="writing the outline failed: bad",
        error=TRACEBACK,
        **profiles,
    )
    video = VideoRun.objects.create(
        owner=user,
        status=RunStatus.SUCCEEDED,
        title="Dawn",
        prompt="A keeper lights the lamp.",
        characters=[{"name": "Ada", "description": "a keeper"}],
    )
    result = VideoResult.objects.create(
        run=video,
        video=media(f"videos/{video.pk}/video.mp4", bytes(300)),
        audio=media(f"videos/{video.pk}/narration.wav", b"RIFF" + bytes(100)),
        script=[{"speaker": "Ada", "text": "Hi.", "start": 0.0, "end": 1.0}],
        duration_seconds=1.0,
        width=640,
        height=360,
        processing_time_seconds=1.0,
    )
    CharacterImage.objects.create(
        result=result,
        position=0,
        name="Ada",
        image=media(f"videos/{video.pk}/ada.png", b"\x89PNG" + bytes(50)),
    )
    schedule = PeriodicTask.objects.order_by("pk").first()
    assert schedule is not None
    return {
        "podcast": podcast.pk,
        "video": video.pk,
        "source": source.pk,
        "task": podcast.task_id,
        "schedule": schedule.pk,
    }


def config(world: dict[str, object]) -> str:
    pins = [
        (r"^/api/podcasts/\{id\}/", f'"path.id" = "{world["podcast"]}"'),
        (r"^/api/videos/\{id\}/", f'"path.id" = "{world["video"]}", "path.position" = "0"'),
        (r"^/api/sources/\{id\}/", f'"path.id" = {world["source"]}'),
        (r"^/api/(episode|speaker)-profiles/\{slug\}/", '"path.slug" = "default"'),
        (r"^/api/tasks/\{task_id\}/", f'"path.task_id" = "{world["task"]}"'),
        (r"^/api/schedules/\{id\}/", f'"path.id" = {world["schedule"]}'),
    ]
    return "".join(
        f"[[operations]]\ninclude-path-regex = '{regex}'\nparameters = {{ {values} }}\n\n"
        for regex, values in pins
    )


def schemathesis(base: str, token: str, paths: list[str], tmp_path: Path):
    """One Schemathesis run; returns (exit code, output, operations tested, failed)."""
    config_file = tmp_path / "schemathesis.toml"
    junit = tmp_path / f"report-{uuid.uuid4().hex}.xml"
    command = [
        ST,
        "--config-file",
        str(config_file),
        "run",
        f"{base}/api/schema/",
        "--header",
        f"Authorization: Token {token}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "2",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance,negative_data_rejection",
        "--request-timeout",
        "30",
        "--no-shrink",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
        *paths,
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    cases = ElementTree.parse(junit).getroot().iter("testcase") if junit.exists() else []
    tested = failed = 0
    for case in cases:
        tested += 1
        failed += any(child.tag in ("failure", "error") for child in case)
    return done.returncode, done.stdout + done.stderr, tested, failed


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    broker_url, django_user_model, tmp_path
):
    user = django_user_model.objects.create_user("fuzz", password="a-long-password-1")
    staff = django_user_model.objects.create_user("fuzz-staff", password="x", is_staff=True)
    world = make_world(user, staff)
    (tmp_path / "schemathesis.toml").write_text(config(world))
    user_token = Token.objects.create(user=user).key
    staff_token = Token.objects.create(user=staff).key
    # The production URL conf (no test-only run kind), its own cache keys, the suite's high limits.
    web, base = start_web(
        broker_url, EXTRA_APPS="", CACHE_KEY_PREFIX=f"schemathesis-{uuid.uuid4().hex}"
    )
    try:
        runs = [
            ("user", user_token, ["--exclude-path-regex", "^/api/schedules"]),
            # Staff: the schedules, and what users may only read (profiles) or not at all (metrics).
            ("staff", staff_token, ["--include-path-regex", STAFF_PATHS]),
        ]
        results = {name: schemathesis(base, token, paths, tmp_path) for name, token, paths in runs}
    finally:
        web.stop()

    for name, (code, output, tested, failed) in results.items():
        report = f"{name} run: exit {code}, {tested} operations, {failed} failed\n{output[-6000:]}"
        assert code == 0 and failed == 0, report
        assert tested >= (30 if name == "user" else 15), report
    assert "Traceback" not in web.log(), web.log()[-3000:]
