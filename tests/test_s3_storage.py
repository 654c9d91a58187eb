"""Media in an S3 bucket (MEDIA_STORAGE=s3) against a real SeaweedFS: the settings, the bucket
made on set-up, downloads by presigned redirect or streamed with byte ranges, and the storage
probe in health. The podcast and video runs end to end are in test_s3_api.py."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ops.health import check_health, health_cache
from ops.storage import ensure_bucket, storage_error
from ops.testing import PYTHON, ROOT, start_beat, wait_for
from ops.testing_storage import SeaweedFS
from video.models import VideoResult, VideoRun

# Not the suite's environment: what a fresh shell on a server would have.
BASE = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "sqlite:////tmp/config-errors.sqlite3"}
BYTES = bytes(range(256)) * 40  # 10240 bytes, each position telling where it is


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env={**BASE, "DEBUG": "true", **env},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


# Settings


def test_s3_without_a_bucket_name_is_one_sentence_naming_the_variable():
    result = manage("check", MEDIA_STORAGE="s3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "The settings are not usable: AWS_STORAGE_BUCKET_NAME must be set when MEDIA_STORAGE is s3."
    )


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("MEDIA_STORAGE", "disk", "MEDIA_STORAGE must be one of filesystem, s3, not 'disk'"),
        ("MEDIA_S3_DOWNLOAD", "proxy", "MEDIA_S3_DOWNLOAD must be one of redirect, stream"),
        ("MEDIA_S3_URL_SECONDS", "0", "MEDIA_S3_URL_SECONDS must be at least 1, not 0"),
    ],
)
def test_bad_media_values_name_the_variable(variable, value, sentence):
    result = manage("check", **{variable: value})
    assert result.returncode == 2
    assert sentence in result.stderr and "Traceback" not in result.stderr


def test_the_settings_build_the_s3_storage_from_django_storages_own_names(seaweedfs):
    script = (
        "from django.core.files.storage import default_storage as s; "
        "print(s.bucket_name, type(s._wrapped).__name__, s.endpoint_url, s.querystring_expire, "
        "s.client_config.s3['addressing_style'], s.client_config.signature_version, "
        "s.default_acl, s.file_overwrite, s.access_key == s.secret_key)"
    )
    result = manage("shell", "-c", script, **seaweedfs.env(MEDIA_S3_URL_SECONDS="120"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == [
        seaweedfs.bucket, "S3Storage", seaweedfs.endpoint, "120", "path", "s3v4", "None", "True",
        "False",
    ]  # fmt: skip


# The bucket on set-up


def test_ensure_bucket_creates_a_missing_bucket_once(seaweedfs, settings):
    bucket = "mediaruns-made-on-setup"
    settings.STORAGES = {**settings.STORAGES, "default": seaweedfs.storage(bucket)}
    assert bucket not in seaweedfs.bucket_names()

    assert ensure_bucket() is True
    assert bucket in seaweedfs.bucket_names()
    assert ensure_bucket() is False  # idempotent: every start may run it

    # The command, as make run and the deploy units call it, in a process of its own.
    made = manage("ensure_bucket", **seaweedfs.env(AWS_STORAGE_BUCKET_NAME="mediaruns-by-command"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "Created the bucket 'mediaruns-by-command'."
    again = manage("ensure_bucket", **seaweedfs.env(AWS_STORAGE_BUCKET_NAME="mediaruns-by-command"))
    assert again.stdout.strip() == "The bucket 'mediaruns-by-command' is there."
    assert "mediaruns-by-command" in seaweedfs.bucket_names()


def test_ensure_bucket_does_nothing_for_the_filesystem(tmp_path):
    result = manage("ensure_bucket", MEDIA_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert str(tmp_path) in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_storage_is_one_sentence_from_ensure_bucket(seaweedfs, settings):
    gone = SeaweedFS()  # ports nobody listens on
    result = manage("ensure_bucket", **gone.env())
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"CommandError: The media storage at {gone.endpoint} (bucket ")
    assert "does not answer" in lines[0]

    settings.STORAGES = {**settings.STORAGES, "default": gone.storage()}
    with pytest.raises(CommandError, match="does not answer"):
        call_command("ensure_bucket")


def test_wrong_keys_are_refused_not_taken_for_a_missing_bucket(seaweedfs, settings):
    storage = seaweedfs.storage()
    storage["OPTIONS"]["secret_key"] = "not-the-secret"
    settings.STORAGES = {**settings.STORAGES, "default": storage}
    with pytest.raises(CommandError, match="refused"):
        call_command("ensure_bucket")


# Downloads


@pytest.fixture
def finished_video(s3_media, user):
    """A finished run whose MP4 (here: known bytes) is an object in the bucket."""
    run = VideoRun.objects.create(
        owner=user, status="succeeded", title="Stored", characters=[{"name": "Ada"}]
    )
    name = default_storage.save(f"videos/{run.pk}/video.mp4", ContentFile(BYTES))
    VideoResult.objects.create(run=run, video=name, duration_seconds=1.0, width=640, height=360)
    return run


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user(
        "sam", password="a-long-password-5", is_staff=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


@pytest.mark.django_db
def test_a_download_redirects_the_owner_and_staff_to_a_short_lived_presigned_url(
    finished_video, s3_media, api, staff_api, other_user, settings
):
    settings.MEDIA_S3_DOWNLOAD = "redirect"
    settings.MEDIA_S3_URL_SECONDS = 60
    path = f"/api/videos/{finished_video.pk}/video/"
    for client in (api, staff_api):
        reply = client.get(path)
        assert reply.status_code == 302
        assert reply["Cache-Control"] == "private, no-store"
        location = reply["Location"]
        assert location.startswith(f"{s3_media.endpoint}/{s3_media.bucket}/videos/")
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=60" in location

        fetched = httpx.get(location)  # no credentials but the signature in the URL
        assert fetched.status_code == 200
        assert fetched.content == BYTES
        assert fetched.headers["Content-Type"] == "video/mp4"
        # The bucket answers ranges itself, so players seek.
        part = httpx.get(location, headers={"Range": "bytes=256-511"})
        assert part.status_code == 206 and part.content == bytes(range(256))

    # The signature covers the object: the same URL for another key is refused.
    split = urlsplit(location)
    forged = split._replace(path=split.path.replace("video.mp4", "other.mp4")).geturl()
    assert httpx.get(forged).status_code == 403
    # Auth comes first: another user, or nobody, gets no URL at all.
    bob = APIClient()
    bob.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    assert bob.get(path).status_code == 404
    assert APIClient().get(path).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        (None, 200, None, BYTES),
        ("bytes=0-2", 206, "bytes 0-2/10240", BYTES[:3]),
        ("bytes=10000-", 206, "bytes 10000-10239/10240", BYTES[10000:]),
        ("bytes=-5", 206, "bytes 10235-10239/10240", BYTES[-5:]),
        ("bytes=512-99999", 206, "bytes 512-10239/10240", BYTES[512:]),
        ("bytes=20000-20001", 416, "bytes */10240", b""),
        ("pages=1-2", 200, None, BYTES),
    ],
)
def test_streaming_from_the_bucket_answers_byte_ranges(
    finished_video, api, settings, header, status, content_range, body
):
    settings.MEDIA_S3_DOWNLOAD = "stream"
    extra = {"HTTP_RANGE": header} if header else {}
    reply = api.get(f"/api/videos/{finished_video.pk}/video/", **extra)
    assert reply.status_code == status
    assert reply.get("Content-Range") == content_range
    content = b"".join(reply.streaming_content) if reply.streaming else reply.content
    assert content == body
    if status != 416:
        assert reply["Content-Length"] == str(len(body))
        assert reply["Content-Type"] == "video/mp4"


@pytest.mark.django_db
def test_a_large_object_is_streamed_in_chunks_never_whole(finished_video, api, settings):
    settings.MEDIA_S3_DOWNLOAD = "stream"
    large = BYTES * 200  # 2 MB
    default_storage.save(finished_video.result.video.name, ContentFile(large))
    reply = api.get(f"/api/videos/{finished_video.pk}/video/")
    assert reply.status_code == 200 and reply["Content-Length"] == str(len(large))
    chunks = list(reply.streaming_content)
    assert len(chunks) >= 8 and max(len(chunk) for chunk in chunks) <= 256 * 1024
    assert b"".join(chunks) == large


@pytest.mark.django_db
def test_a_streamed_object_that_is_gone_is_404(finished_video, api, settings):
    settings.MEDIA_S3_DOWNLOAD = "stream"
    default_storage.delete(finished_video.result.video.name)
    reply = api.get(f"/api/videos/{finished_video.pk}/video/")
    assert reply.status_code == 404
    assert "gone" in reply.json()["detail"]


# Health


def test_the_probe_writes_reads_and_deletes_one_object(s3_media):
    before = set(s3_media.keys(""))
    assert storage_error() is None
    assert set(s3_media.keys("")) == before  # nothing left behind


def test_the_probe_works_on_the_filesystem_too(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert storage_error() is None
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_the_probe_tries_a_silent_storage_once(seaweedfs, settings):
    """A host that accepts connections and never answers: the probe gives up after one try
    (health must answer while the load balancer waits), where the storage itself retries."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    silent = seaweedfs.storage()
    silent["OPTIONS"]["endpoint_url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.STORAGES = {**settings.STORAGES, "default": silent}
    try:
        assert "timeout" in (storage_error() or "").lower()
        assert len(accepted) == 1
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


@pytest.mark.django_db(transaction=True)
def test_health_is_degraded_when_the_storage_stops_and_only_then(
    settings, celery_worker, broker_url
):
    """A storage of the test's own, a worker and a beat: healthy; then the SeaweedFS process is
    killed and health says `degraded` (still HTTP 200: the API and the database work) with the
    storage `failing`."""
    server = SeaweedFS().start()
    beat = start_beat(broker_url)
    try:
        settings.STORAGES = {**settings.STORAGES, "default": server.storage()}
        healthy = wait_for(healthy_report, timeout=60, what="a healthy report")
        assert healthy["storage"] == "ok"

        server.kill()
        health_cache.clear()
        reply = APIClient().get("/api/health/")
        assert reply.status_code == 200
        assert reply.json()["storage"] == "failing"
        assert reply.json()["status"] == "degraded"
        assert reply.json()["database"] == "ok" and reply.json()["broker"] == "ok"
    finally:
        health_cache.clear()
        beat.stop()
        server.stop()


def healthy_report() -> dict:
    report = check_health()
    return report if report["status"] == "healthy" else {}


# Set-up paths


def test_every_setup_path_makes_the_bucket_and_every_unit_reads_the_environment_file():
    units = {
        path.name: path.read_text() for path in (ROOT / "deploy" / "systemd").glob("*.service")
    }
    for name, text in units.items():
        assert "EnvironmentFile=/srv/mediaruns/.env" in text, name
    for name in ("mediaruns-web.service", "mediaruns-worker.service"):
        assert "ExecStartPre=/srv/mediaruns/.venv/bin/python manage.py ensure_bucket" in units[name]
    supervisor = (ROOT / "deploy" / "supervisor" / "mediaruns.conf").read_text()
    assert "manage.py ensure_bucket &&" in supervisor
    devserver = (ROOT / "ops" / "management" / "commands" / "devserver.py").read_text()
    assert 'call_command("ensure_bucket")' in devserver
