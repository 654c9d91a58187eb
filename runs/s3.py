"""STORAGES["default"] for an S3-compatible bucket, written once: web/settings.py builds it from
the environment (MEDIA_STORAGE=s3) and the tests from the SeaweedFS they start
(ops/testing_storage.py). Nothing here imports Django: the settings import it."""

from __future__ import annotations

from typing import Any


def s3_storage(
    bucket_name: str,
    *,
    endpoint_url: str | None,
    access_key: str | None,
    secret_key: str | None,
    region_name: str,
    url_seconds: int,
) -> dict[str, Any]:
    """django-storages' S3Storage with these names and the project's fixed choices."""
    from botocore.config import Config

    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket_name,
            "endpoint_url": endpoint_url,
            "access_key": access_key,
            "secret_key": secret_key,
            "region_name": region_name,
            "default_acl": None,  # objects stay private: only presigned URLs reach them
            "file_overwrite": True,  # artifacts are named by run id; a retry replaces its own
            "querystring_auth": True,
            "querystring_expire": url_seconds,
            # Path-style addressing (http://host/bucket/key) and signature v4: what SeaweedFS
            # and MinIO answer, and AWS too. A storage that is down fails within seconds.
            "client_config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "total_max_attempts": 3},
            ),
        },
    }
