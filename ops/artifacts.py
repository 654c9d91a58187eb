"""The nightly sweep of orphaned artifacts, through Django's storage API only (listdir, delete,
exists), so it works the same on the filesystem and in a bucket.

Artifacts are named by run id (`podcasts/<id>.mp3`, `podcasts/<id>/line-00001.wav`,
`videos/<id>/video.mp4`): the id says who owns a file, and a file with no id in its name is never
touched. Two passes:

- `sweep_deleted`, every night as a step of runs.cleanup (`nightly_pass`): the runs deleted since
  the last pass (DeletedRun rows, written in the deleting transaction) lose their files by run-id
  prefix. It visits only what changed: ARTIFACT_SWEEP_BATCH rows a pass, passes until none are
  left or ARTIFACT_SWEEP_SECONDS are spent; the rest waits for the next night.
- `reconcile`, rarely (a walk starts every ARTIFACT_RECONCILE_DAYS) or on demand
  (`manage.py reconcile_artifacts`): walks every file and deletes those named by an id no row has.
  A pass visits at most ARTIFACT_RECONCILE_FILES files and leaves a cursor the next one resumes
  from. It catches what no deletion recorded: files written after their run was deleted, files
  left from before this sweep existed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import models, transaction
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from runs.models import Run, run_models

from .models import DeletedRun, SweepCursor

logger = logging.getLogger(__name__)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RECONCILE = "reconcile"  # the SweepCursor row of the full walk
OWNER_BATCH = 500  # file ids looked up in one query per model


def nightly_pass() -> int:
    """The cleanup's step: the deleted runs' files, pass after pass until none are left or
    ARTIFACT_SWEEP_SECONDS are spent (the cleanup runs under the system queue's time limit), then
    a bounded part of a reconciliation when one is under way or due. Returns the files deleted."""
    deadline = time.monotonic() + settings.ARTIFACT_SWEEP_SECONDS
    removed = 0
    while True:
        swept = sweep_deleted()
        removed += swept.removed
        if swept.rows < settings.ARTIFACT_SWEEP_BATCH or time.monotonic() >= deadline:
            break
    if time.monotonic() < deadline and reconcile_due():
        removed += reconcile().removed
    return removed


# Recording deletions


def connect_receivers() -> None:
    """Record every run deletion, and the files its result rows held outside the run's folders."""
    owners: dict[type[models.Model], str | None] = {}
    for model in run_models():
        owners[model] = None
        for owner, run_field in file_owners(model):
            owners[owner] = run_field
    RUN_FIELD.update(owners)
    for owner in owners:
        uid = f"ops.artifacts.{owner._meta.label}"
        pre_delete.connect(remember_deleted, sender=owner, dispatch_uid=uid)
        post_delete.connect(write_remembered, sender=owner, dispatch_uid=uid)


# Each watched model: None for a run kind, else the attname of its column holding the run's id.
RUN_FIELD: dict[type[models.Model], str | None] = {}


def file_owners(model: type[Run]) -> list[tuple[type[models.Model], str]]:
    return [
        (rel.related_model, rel.field.attname)
        for rel in model._meta.related_objects
        if (rel.one_to_one or rel.one_to_many) and file_fields(rel.related_model)
    ]


def file_fields(model) -> list[str]:
    return [f.name for f in model._meta.fields if isinstance(f, models.FileField)]


class Remembered(threading.local):
    """The rows one deletion will write. Django sends pre_delete for every object a deletion
    collects before it deletes any, then post_delete model by model, all in one transaction with
    the same `origin`: the first post_delete writes them all in one INSERT, inside the deleting
    transaction (one row at a time cost the cleanup's prune ~1 ms a run)."""

    origin: int | None = None
    rows: list[DeletedRun]

    def __init__(self) -> None:
        self.rows = []


REMEMBERED = Remembered()


def remember_deleted(sender, instance: models.Model, origin=None, **kwargs) -> None:
    if REMEMBERED.origin != id(origin):  # another deletion: what a failed one left is dropped
        REMEMBERED.origin, REMEMBERED.rows = id(origin), []
    run_field = RUN_FIELD[sender]
    if run_field is None:
        REMEMBERED.rows.append(DeletedRun(run_id=instance.pk))
        return
    # Names under the run's folders are swept with them; only the others need a row.
    run_id = getattr(instance, run_field)
    for field in file_fields(sender):
        name = getattr(instance, field).name
        if name and not under_run_folder(name, run_id):
            REMEMBERED.rows.append(DeletedRun(run_id=run_id, name=name))


def write_remembered(sender, origin=None, using: str = "default", **kwargs) -> None:
    if REMEMBERED.origin == id(origin) and REMEMBERED.rows:
        rows, REMEMBERED.rows = REMEMBERED.rows, []
        DeletedRun.objects.using(using).bulk_create(rows)


def under_run_folder(name: str, run_id) -> bool:
    return f"/{run_id}/" in f"/{name}"


# The nightly pass over deleted runs


@dataclass(frozen=True)
class Swept:
    rows: int  # recorded deletions this pass claimed
    removed: int  # files it deleted


def sweep_deleted(limit: int | None = None) -> Swept:
    """Delete the files of runs deleted since the last pass, at most `limit` rows' worth. Rows
    are claimed with SKIP LOCKED, so two passes at once share the work."""
    limit = limit or settings.ARTIFACT_SWEEP_BATCH
    removed = 0
    with transaction.atomic():
        claimed = DeletedRun.objects.select_for_update(skip_locked=True)
        rows = list(claimed.values_list("pk", "run_id", "name")[:limit])
        if not rows:
            return Swept(rows=0, removed=0)
        names: dict[uuid.UUID, set[str]] = {}
        for _, run_id, name in rows:
            names.setdefault(run_id, set()).add(name)
        alive = live_runs(names)
        folders = top_folders()
        done = set()
        for run_id, run_names in names.items():
            try:
                if run_id not in alive:
                    removed += remove_run_artifacts(run_id, run_names, folders)
                done.add(run_id)
            except Exception:  # one unreadable folder must not keep the others' rows
                logger.exception("could not remove the artifacts of deleted run %s", run_id)
        DeletedRun.objects.filter(pk__in=[pk for pk, run_id, _ in rows if run_id in done]).delete()
    if removed:
        logger.info("removed %s artifact file(s) of %s deleted run(s)", removed, len(done))
    return Swept(rows=len(rows), removed=removed)


def live_runs(names: dict[uuid.UUID, set[str]]) -> set[uuid.UUID]:
    """The runs among these that still exist. A result deleted alone leaves a row, but its run
    lives on and may write the same names again: its files are not ours to touch. A blank name
    is the run's own deletion, written in the deleting transaction: that id (a UUID, never
    reused) has no run any more, so only the ids with result names alone are looked up."""
    results_only = {run_id for run_id, run_names in names.items() if "" not in run_names}
    return existing_ids(results_only, owners=run_models()) if results_only else set()


def top_folders() -> list[str]:
    """The folders artifacts live in (podcasts, videos, ...): each may hold `<run id>/`."""
    try:
        folders, _ = default_storage.listdir("")
    except FileNotFoundError:  # the filesystem, before anything was written
        return []
    return sorted(folders)


def remove_run_artifacts(run_id: uuid.UUID, names: set[str], folders: list[str]) -> int:
    key = str(run_id)
    removed = sum(remove_folder(f"{folder}/{key}") for folder in folders)
    for name in names:
        # A recorded name that does not carry the id (a shared default file) is never touched.
        if name and key in name and default_storage.exists(name):
            default_storage.delete(name)
            removed += 1
    return removed


def remove_folder(folder: str) -> int:
    """Delete every file under `folder` (a run-id prefix); returns how many."""
    try:
        folders, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # the filesystem: the run wrote no folder here
        return 0
    removed = sum(remove_folder(f"{folder}/{inner}") for inner in folders)
    for name in files:
        default_storage.delete(f"{folder}/{name}")
        removed += 1
    if folders or files:
        remove_empty_folder(folder)
    return removed


def remove_empty_folder(folder: str) -> None:
    """The filesystem's storage removes an empty directory on delete(); a bucket has no folders
    (and a request for one would be wasted)."""
    if isinstance(default_storage, FileSystemStorage):
        with contextlib.suppress(OSError):  # not empty: a file was written meanwhile
            default_storage.delete(folder)


def existing_ids(ids: set[uuid.UUID], owners: Sequence[type[models.Model]] = ()) -> set[uuid.UUID]:
    """The ids some row of `owners` has. By default any model with a UUID primary key counts as
    an owner, so an upload named by another object's id is never taken for an orphan."""
    owners = owners or [m for m in apps.get_models() if isinstance(m._meta.pk, models.UUIDField)]
    found: set[uuid.UUID] = set()
    wanted = list(ids)
    for start in range(0, len(wanted), OWNER_BATCH):
        batch = wanted[start : start + OWNER_BATCH]
        for model in owners:
            owned = model._default_manager.filter(pk__in=batch).order_by()  # no sort: a set
            found.update(owned.values_list("pk", flat=True))
    return found


# The full reconciliation


@dataclass(frozen=True)
class ReconcilePass:
    visited: int  # files this pass looked at
    removed: int  # orphans it deleted
    finished: bool  # it reached the end of the walk (the next pass starts a new one)


def reconcile_due(now: datetime | None = None) -> bool:
    """A walk is under way, or the last one finished ARTIFACT_RECONCILE_DAYS ago (0: only on
    demand). The first nightly pass starts the count rather than a walk."""
    days = settings.ARTIFACT_RECONCILE_DAYS
    now = now or timezone.now()
    cursor, _ = SweepCursor.objects.get_or_create(name=RECONCILE, defaults={"finished_at": now})
    if cursor.position:
        return True
    last = cursor.finished_at or cursor.started_at
    return bool(days) and (last is None or last <= now - timedelta(days=days))


def reconcile(*, limit: int | None = None, grace_seconds: float | None = None) -> ReconcilePass:
    """Visit up to `limit` files after the cursor, delete those named by an id no row has and
    older than the grace (a file written just before its row commits), and move the cursor.
    A second pass while one runs returns at once (the cursor row is locked)."""
    limit = limit or settings.ARTIFACT_RECONCILE_FILES
    grace = settings.ARTIFACT_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    SweepCursor.objects.get_or_create(name=RECONCILE)
    with transaction.atomic():
        rows = SweepCursor.objects.select_for_update(skip_locked=True)
        cursor = rows.filter(name=RECONCILE).first()
        if cursor is None:
            return ReconcilePass(visited=0, removed=0, finished=False)
        if not cursor.position:
            cursor.started_at, cursor.visited, cursor.removed = timezone.now(), 0, 0
        oldest = timezone.now() - timedelta(seconds=grace)
        visited, removed, candidates = 0, 0, []
        walk = files_after("", tuple(cursor.position.split("/")) if cursor.position else ())
        for name in walk:
            visited += 1
            cursor.position = name
            if ids := ids_in(name):
                candidates.append((name, ids))
            if len(candidates) >= OWNER_BATCH:
                removed += remove_orphans(candidates, oldest)
                candidates = []
            if visited >= limit:
                break
        finished = next(walk, None) is None  # a look one name ahead: no empty last pass
        removed += remove_orphans(candidates, oldest)
        cursor.visited += visited
        cursor.removed += removed
        if finished:
            logger.info(
                "artifact reconciliation done: %s file(s) visited, %s orphan(s) removed",
                cursor.visited,
                cursor.removed,
            )
            cursor.position, cursor.finished_at = "", timezone.now()
        cursor.save()
    return ReconcilePass(visited=visited, removed=removed, finished=finished)


def files_after(folder: str, after: tuple[str, ...]) -> Iterator[str]:
    """Every file name under `folder` in sorted order (by path component), skipping those up to
    `after` without listing the folders that hold only such names."""
    try:
        folders, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # the filesystem: gone or replaced meanwhile
        return
    entries = sorted([(name, True) for name in folders] + [(name, False) for name in files])
    for entry, is_folder in entries:
        name = f"{folder}/{entry}" if folder else entry
        parts = tuple(name.split("/"))
        if is_folder:
            if parts >= after[: len(parts)]:  # else every name inside sorts before the cursor
                yield from files_after(name, after)
        elif parts > after:
            yield name


def ids_in(name: str) -> set[uuid.UUID]:
    return {uuid.UUID(found) for found in UUID_RE.findall(name)}


def remove_orphans(candidates: list[tuple[str, set[uuid.UUID]]], oldest: datetime) -> int:
    """Delete the files none of whose ids a row has, if older than `oldest`."""
    if not candidates:
        return 0
    owned = existing_ids(set().union(*(ids for _, ids in candidates)))
    removed, emptied = 0, set[str]()
    for name, ids in candidates:
        if ids & owned or not modified_before(name, oldest):
            continue
        default_storage.delete(name)
        removed += 1
        emptied.update(folders_named_by_id(name))
    for folder in sorted(emptied, key=len, reverse=True):  # the deepest first
        remove_empty_folder(folder)
    return removed


def folders_named_by_id(name: str) -> Iterator[str]:
    """The folders above `name` that carry an id (`videos/<id>/portraits`, `videos/<id>`)."""
    folder = name.rpartition("/")[0]
    while UUID_RE.search(folder):
        yield folder
        folder = folder.rpartition("/")[0]


def modified_before(name: str, oldest: datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) < oldest
    except FileNotFoundError:  # deleted meanwhile (a concurrent cleanup)
        return False
