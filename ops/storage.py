"""The media storage as operators see it: the bucket made on set-up (`manage.py ensure_bucket`)
and the probe behind `/api/health/`. Both work on Django's default storage, whichever it is."""

from __future__ import annotations

import copy
import logging
import uuid
import weakref
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage, storages

from runs.files import is_object_storage

from .checks import first_line

logger = logging.getLogger(__name__)

PROBE_FOLDER = "health"  # holds no run id, so the orphan sweep leaves it alone
AWS_DEFAULT_REGION = "us-east-1"  # the one region where CreateBucket takes no location
# The probe's S3 client gives up after one try: health must answer within seconds even when the
# storage's host does not (the storage itself retries three times, 5 s to connect each).
PROBE_CLIENT = {"connect_timeout": 2, "read_timeout": 5, "retries": {"total_max_attempts": 1}}
_probe_storages: weakref.WeakKeyDictionary[Storage, Storage] = weakref.WeakKeyDictionary()


class StorageUnavailable(Exception):
    """The bucket could not be checked or made; the message is one sentence for an operator."""


def ensure_bucket() -> bool:
    """Create the S3 bucket when it is missing. True if it was made now; False if it was there
    already or the storage is the local filesystem (nothing to make). Safe to run on every start."""
    from botocore.exceptions import BotoCoreError, ClientError

    storage: Any = default_storage  # django-storages' S3Storage here: its connection and names
    if not is_object_storage(storage):
        return False
    client = storage.connection.meta.client
    where = f"{storage.endpoint_url or 'AWS S3'} (bucket {storage.bucket_name!r})"
    options: dict[str, object] = {"Bucket": storage.bucket_name}
    if storage.region_name and storage.region_name != AWS_DEFAULT_REGION:
        options["CreateBucketConfiguration"] = {"LocationConstraint": storage.region_name}
    try:
        if bucket_exists(client, storage.bucket_name):
            return False
        client.create_bucket(**options)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "BucketAlreadyOwnedByYou":  # another start won
            return False
        raise StorageUnavailable(
            f"The media storage at {where} refused: {first_line(exc)}."
        ) from None
    except BotoCoreError as exc:
        raise StorageUnavailable(
            f"The media storage at {where} does not answer: {first_line(exc)}."
        ) from None
    logger.info("created the media bucket %s", where)
    return True


def bucket_exists(client, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


def storage_error() -> str | None:
    """None if a small object with a unique name can be written, read back and deleted; else
    the first line of why not. Goes through the storage API, as every artifact does."""
    storage = probe_storage()
    payload = uuid.uuid4().hex.encode()
    try:
        name = storage.save(f"{PROBE_FOLDER}/probe-{payload.decode()}.txt", ContentFile(payload))
        try:
            with storage.open(name, "rb") as handle:
                read = handle.read()
        finally:
            storage.delete(name)
    except (
        Exception
    ) as exc:  # whatever the backend raises (OSError, botocore's errors) is the answer
        logger.warning("media storage probe failed: %s", exc)
        return first_line(exc)
    if read != payload:
        logger.warning("media storage probe read back other bytes than it wrote")
        return "the probe object read back other bytes than were written"
    return None


def probe_storage() -> Storage:
    """The default storage; for S3 a copy of it (made once, kept while the storage lives) whose
    client tries once with short timeouts."""
    storage = storages["default"]
    if not is_object_storage(storage):
        return storage
    probe = _probe_storages.get(storage)
    if probe is None:
        from botocore.config import Config

        probe = copy.copy(storage)  # S3Storage's copy leaves the connections behind
        probe.client_config = storage.client_config.merge(Config(**PROBE_CLIENT))  # type: ignore[attr-defined]
        _probe_storages[storage] = probe
    return probe
