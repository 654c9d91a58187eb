"""The maintenance work behind the three schedules: check timeouts, scan, clean up.

Each function finds its rows through the Run indexes ((status, heartbeat_at), (status, created_at),
(status, finished_at)), never by scanning the table, and changes a row only through a conditional
UPDATE or a SKIP LOCKED claim, so two copies running at once never act twice on one run. Every kind
found by `run_models()` is covered; new kinds register nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_celery_results.models import GroupResult, TaskResult

from . import artifacts, broker, outbox, signals, waiting
from .models import Run, RunStatus, run_models

logger = logging.getLogger(__name__)

BATCH = outbox.BATCH


def revoke(task_ids: list[str], *, terminate: bool) -> None:
    """Ask workers to drop (or kill) tasks; a broker outage must not stop the maintenance pass."""
    try:
        current_app.control.revoke(task_ids, terminate=terminate, signal="SIGTERM")
    except Exception as exc:  # kombu raises several kinds when the broker is away
        logger.warning("could not revoke tasks %s: %s", task_ids, exc)


# Check timeouts


def check_timeouts(
    *, stale_after_seconds: float | None = None, timeout_minutes: float = 30
) -> dict:
    """1. end runs past their timeout `timed_out`; 2. rescue runs whose worker died (the scan
    does this too, more often). Revokes go out after the commit."""
    timeout_cutoff = timezone.now() - timedelta(minutes=timeout_minutes)
    timed_out = 0
    for model in outbox.kinds_with(lambda kind: kind.objects.overdue(timeout_cutoff)):
        with transaction.atomic():
            overdue = outbox.lock_batch(model.objects.overdue(timeout_cutoff))
            timed_out += end_timed_out(
                model,
                overdue,
                f"Stopped: running for over {timeout_minutes:g} min.",
                reason="timed out",
            )
    rescued = rescue_stale(stale_after_seconds)
    return {"timed_out": timed_out + rescued["timed_out"], "redispatched": rescued["redispatched"]}


def rescue_stale(stale_after_seconds: float | None = None) -> dict:
    """Send again, ahead of any backlog, every run whose heartbeat stopped (its worker died); end
    it `timed_out` when its attempts are spent. A run is stale RUN_STALE_AFTER_SECONDS after its
    last heartbeat, and the scan runs every 15 s, so a dead worker's run moves within a minute."""
    stale_after = stale_after_seconds or settings.RUN_STALE_AFTER_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    timed_out = redispatched = 0
    for model in outbox.kinds_with(lambda kind: kind.objects.stale(cutoff)):
        with transaction.atomic():
            stale = outbox.lock_batch(model.objects.stale(cutoff))
            spent = [run for run in stale if run.attempt >= run.max_attempts]
            timed_out += end_timed_out(
                model,
                spent,
                "Stopped: the worker was lost on every attempt.",
                reason="worker lost; attempts spent",
            )
            again = [run for run in stale if run.attempt < run.max_attempts]
            revoke_after_commit(again, terminate=False)  # its old message would only back off
            outbox.requeue_after_commit(
                model,
                again,
                message="The worker stopped answering; dispatched again.",
                urgent=True,
                reason="worker lost",
            )
            redispatched += len(again)
    return {"timed_out": timed_out, "redispatched": redispatched}


def end_timed_out(model: type[Run], runs: list[Run], message: str, *, reason: str) -> int:
    """End locked runs `timed_out` and kill their tasks once that is committed."""
    if not runs:
        return 0
    model.objects.filter(pk__in=[run.pk for run in runs]).update(
        status=RunStatus.TIMED_OUT, finished_at=timezone.now(), message=message
    )
    signals.changed(model, runs, RunStatus.TIMED_OUT, reason=reason, message=message)
    revoke_after_commit(runs, terminate=True)
    for run in runs:
        logger.warning("run %s timed out: %s", run.pk, message)
    return len(runs)


def revoke_after_commit(runs: list[Run], *, terminate: bool) -> None:
    task_ids = [run.task_id for run in runs if run.task_id]
    if task_ids:
        transaction.on_commit(lambda: revoke(task_ids, terminate=terminate))


# Scan


def scan(
    *,
    pending_grace_seconds: float = 10,
    requeue_after_seconds: float = 3600,
    lost_after_seconds: float = 20,
) -> dict:
    """0. queue scheduled runs whose time came; 1. dispatch runs left pending (the outbox relay);
    2. rescue runs whose worker died; 3. dispatch again queued runs whose message the broker no
    longer holds (checked against the broker after `lost_after_seconds`; after
    `requeue_after_seconds` when it cannot tell); 4. poll the provider jobs of waiting runs;
    5. the steps other apps added (`add_step`), each under its name."""
    scheduled = dispatch_scheduled()
    dispatched = outbox.relay_pending(older_than_seconds=pending_grace_seconds)
    rescued = rescue_stale()
    requeued = resend_lost(lost_after_seconds, requeue_after_seconds)
    polled = poll_waiting()
    outcome = {
        "scheduled": scheduled,
        "dispatched": dispatched,
        "redispatched": rescued["redispatched"],
        "timed_out": rescued["timed_out"],
        "requeued": requeued,
        "polled": polled,
    }
    return outcome | added_steps("scan")


# Steps other apps add to the scan or the cleanup from their AppConfig.ready() (webhooks: the
# deliveries that are due; old deliveries), so runs imports none of them. By name: adding one
# twice keeps one.
STEPS: dict[str, dict[str, Callable[[], int]]] = {"scan": {}, "cleanup": {}}


def add_step(schedule: str, name: str, step: Callable[[], int]) -> None:
    STEPS[schedule][name] = step


def added_steps(schedule: str) -> dict[str, int]:
    done = {}
    for name, step in STEPS[schedule].items():
        try:
            done[name] = step()
        except Exception:  # one app's step must not stop the lifecycle's own maintenance
            logger.exception("%s step %s failed", schedule, name)
    return done


def dispatch_scheduled(now: datetime | None = None) -> int:
    """Queue and send the scheduled runs whose `run_at` has come, in SKIP LOCKED batches (the
    outbox relay's protocol: marked `queued` in the transaction, sent after the commit). The row
    is the truth: a run due while every process was down goes at the first scan after."""
    now = now or timezone.now()
    sent = 0
    for model in outbox.kinds_with(lambda kind: kind.objects.due(now)):
        while True:
            with transaction.atomic():
                due = outbox.lock_batch(model.objects.due(now).order_by("run_at"))
                outbox.requeue_after_commit(
                    model, due, message="Its time came; dispatched.", reason="its time came"
                )
            sent += len(due)
            if len(due) < BATCH:
                break
    if sent:
        logger.info("%s scheduled run(s) were due; dispatched", sent)
    return sent


def resend_lost(lost_after_seconds: float, requeue_after_seconds: float) -> int:
    """Send again the queued runs whose message is gone, ahead of any backlog.

    Read the candidates first, then the broker: a message a worker takes meanwhile is held (or
    its run is no longer queued), so a healthy run is not sent twice. When the broker cannot be
    read, only runs queued for `requeue_after_seconds` count as lost.
    """
    now = timezone.now()
    candidates = {
        model: list(
            model.objects.queued_before(now - timedelta(seconds=lost_after_seconds))
            .order_by()
            .values_list("pk", "task_id")[:BATCH]
        )
        for model in run_models()
    }
    if not any(candidates.values()):
        return 0
    held = broker.held_task_ids(queue_names(), recent_seconds=lost_after_seconds)
    requeued = 0
    for model, rows in candidates.items():
        if held is None:
            cutoff = now - timedelta(seconds=requeue_after_seconds)
            gone = dict(model.objects.queued_before(cutoff).values_list("pk", "task_id")[:BATCH])
        else:
            gone = {pk: task_id for pk, task_id in rows if task_id not in held}
        if not gone:
            continue
        with transaction.atomic():
            # Re-checked under the lock: a run that started or was sent again meanwhile (a new
            # task id) is left alone.
            locked = outbox.lock_batch(model.objects.queued_before(now).filter(pk__in=gone))
            lost = [run for run in locked if run.task_id == gone[run.pk]]
            outbox.requeue_after_commit(
                model,
                lost,
                message="Its message was lost; sent again.",
                urgent=True,
                reason="message lost",
            )
        requeued += len(lost)
        if lost:
            logger.warning("%s %s run(s) had lost their message; sent again", len(lost), model)
    return requeued


def queue_names() -> list[str]:
    return [queue.name for queue in current_app.conf.task_queues or ()]


# A scan leases the waiting runs it polls for this long (their heartbeat_at says when they were
# last polled), so a scan overlapping it, or the next one, leaves them alone meanwhile. Shorter
# than the scan's 15 s interval: every scan polls every waiting run once.
POLL_LEASE_SECONDS = 10


def poll_waiting() -> int:
    """Poll the provider job of each waiting run this scan leased, for the kinds that registered
    a poller and have a waiting run due."""
    kinds = [model for model in run_models() if waiting.has_poller(model)]
    polled = 0
    for model in outbox.kinds_with(due_for_poll, kinds):
        for run in lease_waiting(model):
            try:
                run.poll_remote()  # its moves are conditional UPDATEs: a late poll changes nothing
                polled += 1
            except Exception:
                logger.exception("polling the provider job of run %s failed", run.pk)
    return polled


def due_for_poll(model: type[Run]) -> QuerySet:
    """Waiting runs not polled for POLL_LEASE_SECONDS (their heartbeat_at)."""
    leased_after = timezone.now() - timedelta(seconds=POLL_LEASE_SECONDS)
    return model.objects.filter(status=RunStatus.WAITING).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=leased_after)
    )


def lease_waiting(model: type[Run]) -> list[Run]:
    """Claim a batch of waiting runs due for a poll, in one short transaction: lock them (SKIP
    LOCKED: a concurrent scan takes others) and stamp them polled now. The polls then run outside
    any transaction, so a slow provider holds no row lock."""
    now = timezone.now()
    with transaction.atomic():
        runs = outbox.lock_batch(due_for_poll(model).order_by("heartbeat_at"))
        if runs:
            leased = model.objects.filter(pk__in=[run.pk for run in runs], status=RunStatus.WAITING)
            leased.update(heartbeat_at=now)
    for run in runs:
        run.heartbeat_at = now
    return runs


# Clean up


def cleanup(
    *,
    retention_days: float | None = None,
    orphan_grace_seconds: float = 3600,
    max_batches: int = 200,
) -> dict:
    """1. delete finished runs (results, artifact files) past retention;
    2. delete expired Celery results; 3. the steps other apps added (`add_step`), among them
    ops' artifact sweep ("orphan_files"), which runs after the prune so the runs it just deleted
    lose their other files too. `orphan_grace_seconds` is accepted for schedules that still pass
    it; the sweep's grace is ARTIFACT_ORPHAN_GRACE_SECONDS."""
    days = retention_days or settings.RUN_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    # One plain read says which kinds have expired runs; only those open a transaction.
    expired = outbox.kinds_with(lambda kind: kind.objects.expired(cutoff))
    runs = sum(prune_runs(model, cutoff, max_batches) for model in expired)
    results = prune_task_results(max_batches)
    outcome = {"runs": runs, "task_results": results}
    return outcome | added_steps("cleanup")


def prune_runs(model: type[Run], cutoff, max_batches: int) -> int:
    """Delete expired finished runs batch by batch, each claimed with SKIP LOCKED. A short batch
    is the last: what a concurrent cleanup holds is that one's to delete."""
    expired = model.objects.expired(cutoff).order_by()
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            pks = list(
                expired.select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH]
            )
            if pks:
                delete_runs(model, pks)
        deleted += len(pks)
        if len(pks) < BATCH:
            break
    if deleted:
        logger.info("deleted %s %s past retention", deleted, model.__name__)
    return deleted


def delete_runs(model: type[Run], pks: list) -> None:
    """Inside the claiming transaction: the runs with their results, their history (the
    `runs_deleted` receivers), then their files once the deletion commits."""
    names = artifact_names(model, pks)
    folders = [f"{model.artifact_folder}/{pk}" for pk in pks if model.artifact_folder]
    model.objects.filter(pk__in=pks).delete()  # cascades to results
    signals.runs_deleted.send(sender=model, pks=pks)  # e.g. their history goes too
    transaction.on_commit(partial(remove_files, names, folders))


def artifact_names(model: type[Run], pks: list) -> list[str]:
    """Storage names in every FileField of the runs and of the rows pointing at them (results)."""
    names: list[str] = []
    for owner, lookup in [(model, "pk"), *related_owners(model)]:
        fields = [f.name for f in owner._meta.fields if isinstance(f, models.FileField)]
        if fields:
            rows = owner._default_manager.filter(**{f"{lookup}__in": pks}).values_list(*fields)
            names += [name for row in rows for name in row if name]
    return names


def related_owners(model: type[Run]) -> list[tuple[type[models.Model], str]]:
    return [
        (rel.related_model, rel.field.name)
        for rel in model._meta.related_objects
        if rel.one_to_one or rel.one_to_many
    ]


def remove_files(names: list[str], folders: Sequence[str] = ()) -> None:
    """Delete the runs' artifacts through the storage: the named files, then each run's folder
    (what no result names: the spoken lines of a run that failed)."""
    for name in names:
        try:
            artifacts.delete(name)
        except SuspiciousOperation:  # a stored name never points outside the storage
            logger.warning("not deleting %r: outside the storage", name)
    for folder in folders:
        artifacts.delete_folder(folder)


def prune_task_results(max_batches: int) -> int:
    """Delete expired django-celery-results rows in batches through the date_done index; one plain
    read first says which of the two tables has any."""
    cutoff = timezone.now() - timedelta(seconds=current_app.conf.result_expires or 0)
    expired = [
        model.objects.filter(date_done__lt=cutoff).order_by() for model in (TaskResult, GroupResult)
    ]
    deleted = 0
    for rows, has_rows in zip(expired, outbox.have_rows(expired), strict=True):
        for _ in range(max_batches if has_rows else 0):
            pks = list(rows.values_list("pk", flat=True)[:BATCH])
            if pks:
                rows.model._default_manager.filter(pk__in=pks).delete()
            deleted += len(pks)
            if len(pks) < BATCH:
                break
    return deleted


# Artifacts are named by run id (podcasts/<id>.mp3, videos/<id>/...): the id says who owns a file.
