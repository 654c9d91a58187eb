"""Run artifacts in Django's storage (`STORAGES["default"]`): the one module that talks to it.

Generation works on local files in a run's temporary folder (`RunContext.tmp_dir`); a finished
file becomes an artifact with `save`, under a name that starts with its run's id folder
(`podcasts/<id>.mp3`, `videos/<id>/scene-0.png`). A step that needs an artifact another worker
made fetches it with `local_copy`. Workers share the storage, never a disk: with the default
filesystem storage (MEDIA_ROOT) that holds on one machine, with S3 (MEDIA_STORAGE=s3) on many.

Saving is one step: nobody ever sees half an artifact. S3 makes an object visible only once its
upload completes; `ArtifactStorage`, the filesystem default, writes a temporary file beside the
final name and renames it into place. Both replace an older artifact of the same name, so a
retried step leaves one file, not `name_abc123` copies.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path, PurePosixPath
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils._os import safe_makedirs
from django.utils.deconstruct import deconstructible

CHUNK_BYTES = 256 * 1024  # what a save or a copy holds in memory at once


class ArtifactMissing(FileNotFoundError):
    """An artifact a step needs is not in the storage (cleaned up, or never saved)."""

    def __init__(self, name: str):
        super().__init__(f"the artifact {name} is not in the storage")
        self.name = name


def storage() -> Storage:
    return storages["default"]


def save(name: str, local_path: Path) -> str:
    """Make the finished file `local_path` the artifact `name` in one step; returns `name`.

    An artifact of that name is replaced. The file is streamed, never read whole.
    """
    if is_small_s3_object(storage(), local_path):
        put_s3_object(storage(), name, local_path)
        return name
    with open(local_path, "rb") as handle:
        saved = storage().save(name, File(handle, name=PurePosixPath(name).name))
    if saved != name:  # a storage that renames instead of replacing would orphan every retry
        storage().delete(saved)
        raise RuntimeError(f"the storage saved {name} as {saved}; it must replace by name")
    return name


def is_small_s3_object(store: Any, local_path: Path) -> bool:
    """An S3 storage (django-storages) and a file it would upload in one request anyway."""
    config = getattr(store, "transfer_config", None)
    if config is None or not hasattr(store, "bucket_name") or getattr(store, "gzip", True):
        return False
    return local_path.stat().st_size < config.multipart_threshold


def put_s3_object(store: Any, name: str, local_path: Path) -> None:
    """One PutObject, with the key, parameters and content type S3Storage.save would use.

    S3Storage.save goes through boto3's transfer manager, which costs twice the client CPU per
    file: a podcast saves a hundred lines while it speaks the next ones (bench/storage.py).
    """
    from storages.utils import clean_name, safe_join

    key = safe_join(store.location, clean_name(name))
    params = store.get_object_parameters(key)  # AWS_S3_OBJECT_PARAMETERS
    params.setdefault("ContentType", mimetypes.guess_type(name)[0] or store.default_content_type)
    if "ACL" not in params and store.default_acl:
        params["ACL"] = store.default_acl
    with open(local_path, "rb") as body:
        store.connection.meta.client.put_object(
            Bucket=store.bucket_name, Key=key, Body=body, **params
        )


def local_copy(name: str, dest_dir: Path) -> Path:
    """Download the artifact `name` into `dest_dir` (under its base name) for a local tool.

    Streamed to disk in chunks: an S3 object by boto3's ranged download, a file by copying.
    Raises ArtifactMissing when there is no such artifact.
    """
    dest = dest_dir / PurePosixPath(name).name
    staged = dest.with_name(f".{dest.name}.part")
    try:
        with storage().open(name, "rb") as stored:
            remote = getattr(stored, "obj", None)  # django-storages' S3File: the boto3 Object
            if remote is not None:
                remote.download_file(str(staged))
            else:
                with open(staged, "wb") as out:
                    shutil.copyfileobj(stored, out, CHUNK_BYTES)
        os.replace(staged, dest)
    except FileNotFoundError as exc:
        raise ArtifactMissing(name) from exc
    finally:
        staged.unlink(missing_ok=True)
    return dest


def local_file(name: str, folder: Path) -> Path:
    """The artifact `name` as a file in `folder`: the one made there, else a download (it may
    come from an earlier attempt or part, on another machine). Raises ArtifactMissing."""
    local = folder / PurePosixPath(name).name
    return local if local.is_file() else local_copy(name, folder)


def exists(name: str) -> bool:
    return storage().exists(name)


def delete(name: str) -> None:
    """Delete one artifact; one that is already gone is fine."""
    storage().delete(name)


def names_under(folder: str) -> list[str]:
    """Every artifact name under `folder` (a run's folder, `videos/<id>`), at any depth."""
    return [name for names in walk(folder) for name in names[1]]


def walk(folder: str) -> list[tuple[str, list[str]]]:
    """(folder, its artifact names) for `folder` and each folder below it, deepest first."""
    try:
        folders, files = storage().listdir(folder)
    except FileNotFoundError:
        return []
    below = [found for sub in folders for found in walk(f"{folder}/{sub}")]
    return [*below, (folder, [f"{folder}/{file}" for file in files])]


def delete_folder(folder: str) -> int:
    """Delete every artifact under `folder`, and the folders on a filesystem; how many."""
    bucket = getattr(storage(), "bucket", None)  # django-storages' S3Storage: its boto3 Bucket
    if bucket is not None:
        # One listing and batched deletes (up to 1,000 keys a request), not a request a file.
        prefix = f"{getattr(storage(), 'location', '')}/{folder}/".lstrip("/")
        answers = bucket.objects.filter(Prefix=prefix).delete()
        return sum(len(answer.get("Deleted", ())) for answer in answers)
    deleted = 0
    for each, names in walk(folder):
        for name in names:
            delete(name)
        deleted += len(names)
        if isinstance(storage(), FileSystemStorage):  # an object store has no folders
            with suppress(OSError):  # not empty: something was saved there meanwhile
                storage().delete(each)
    return deleted


class BackgroundSaves:
    """Saves artifacts one after another in a background thread while the caller makes the
    next file (an upload to S3 takes a round trip or two each).

    `save(key, name, path)` queues one; `done()` answers (key, name) for each saved since the
    last call, in order, and `wait()` for all of them; a failed save raises there, in the
    caller's thread. Leaving the block drops the saves not started and waits for the one going.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artifact-save")
        self._queued: deque[tuple[str, Future[str]]] = deque()

    def __enter__(self) -> BackgroundSaves:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def save(self, key: str, name: str, local_path: Path) -> None:
        self._queued.append((key, self._pool.submit(save, name, local_path)))

    def done(self) -> list[tuple[str, str]]:
        saved = []
        while self._queued and self._queued[0][1].done():
            key, future = self._queued.popleft()
            saved.append((key, future.result()))
        return saved

    def wait(self) -> list[tuple[str, str]]:
        saved = []
        while self._queued:
            key, future = self._queued.popleft()
            saved.append((key, future.result()))
        return saved


@deconstructible(path="runs.artifacts.ArtifactStorage")
class ArtifactStorage(FileSystemStorage):
    """FileSystemStorage that replaces a file of the same name in one rename.

    Django's own either picks another name (`scene-0_Ab12Cd3.png`) or, with allow_overwrite,
    truncates the file in place, so a reader could see half of it.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_overwrite", True)
        super().__init__(**kwargs)

    def _save(self, name: str, content: File) -> str:
        final = Path(self.path(name))
        if self.directory_permissions_mode is not None:
            safe_makedirs(final.parent, self.directory_permissions_mode, exist_ok=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
        # In the same folder, so the rename is one step on one filesystem.
        fd, staged = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in content.chunks(CHUNK_BYTES):
                    out.write(chunk if isinstance(chunk, bytes) else chunk.encode())
            os.chmod(staged, self.file_permissions_mode or 0o644)
            os.replace(staged, final)
        finally:
            Path(staged).unlink(missing_ok=True)
        return Path(os.path.relpath(final, self.location)).as_posix()
