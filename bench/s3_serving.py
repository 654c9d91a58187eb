"""What serving media from an S3 bucket costs, against a SeaweedFS of its own: the health probe
(write, read, delete), a redirect answer (presigning only), and streaming a 64 MiB object through
the download view (throughput, and how much the process grows: chunks, never the whole object).

    DEBUG=true .venv/bin/python bench/s3_serving.py
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402
from django.http import HttpRequest  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from ops.storage import storage_error  # noqa: E402
from ops.testing_storage import SeaweedFS  # noqa: E402
from runs.files import serve_file  # noqa: E402

OBJECT_MIB = 64


class Stored:
    """What serve_file reads of a FileField: the name and the storage."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.storage = default_storage


def main() -> None:
    server = SeaweedFS().start()
    try:
        with override_settings(STORAGES={**settings.STORAGES, "default": server.storage()}):
            measure(server)
    finally:
        server.stop()


def measure(server: SeaweedFS) -> None:
    storage_error()  # the first makes the client
    probes = []
    for _ in range(20):
        started = time.perf_counter()
        assert storage_error() is None
        probes.append(time.perf_counter() - started)
    print(f"health storage probe: median {statistics.median(probes) * 1000:.1f} ms of 20")

    with tempfile.NamedTemporaryFile() as data:  # uploaded from disk: this process stays small
        for _ in range(OBJECT_MIB):
            data.write(os.urandom(1024 * 1024))
        data.flush()
        server.client().upload_file(data.name, server.bucket, "bench/big.bin")
    stored, request = Stored("bench/big.bin"), HttpRequest()

    with override_settings(MEDIA_S3_DOWNLOAD="redirect"):
        started = time.perf_counter()
        for _ in range(100):
            serve_file(stored, request, "application/octet-stream")
        each = (time.perf_counter() - started) * 10
        print(f"redirect answer: {each:.2f} ms (presigning, no request to the bucket)")

    with override_settings(MEDIA_S3_DOWNLOAD="stream"):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        response = serve_file(stored, request, "application/octet-stream")
        sent = sum(len(chunk) for chunk in response.streaming_content)
        seconds = time.perf_counter() - started
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(
            f"stream {OBJECT_MIB} MiB: {sent / seconds / 1e6:.0f} MB/s, "
            f"peak memory grew {grown:.1f} MiB"
        )


if __name__ == "__main__":
    main()
