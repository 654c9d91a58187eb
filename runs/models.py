"""The shared run: one abstract model every generation kind builds on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from django.apps import apps
from django.conf import settings
from django.db import models

from . import waiting


class RunStatus(models.TextChoices):
    SCHEDULED = "scheduled"  # created with a future run_at; the scan queues it when it is due
    PENDING = "pending"  # committed, not yet accepted by the broker
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # handed to a remote provider, polled by the scan
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


# Scheduled runs count as active: they hold a place under the per-user cap (runs/limits.py), so
# nobody books thousands of runs ahead, and they can be cancelled like any unstarted run.
ACTIVE = frozenset(
    {
        RunStatus.SCHEDULED,
        RunStatus.PENDING,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.WAITING,
    }
)
TERMINAL = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)
CLAIMABLE = frozenset({RunStatus.PENDING, RunStatus.QUEUED})
IN_PROGRESS = frozenset({RunStatus.RUNNING, RunStatus.WAITING})
RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class RunQuerySet(models.QuerySet):
    def for_user(self, user) -> RunQuerySet:
        return self if user.is_staff else self.filter(owner=user)

    def active(self) -> RunQuerySet:
        return self.filter(status__in=ACTIVE)

    def finished(self) -> RunQuerySet:
        return self.filter(status__in=TERMINAL)

    # What maintenance looks for; each one is served by an index in Run.Meta.

    def overdue(self, cutoff: datetime) -> RunQuerySet:
        """In progress since before `cutoff` (status, created_at)."""
        # created_at <= started_at, so the created_at bound is implied; it lets the index narrow
        # the scan to old in-progress runs.
        return self.filter(status__in=IN_PROGRESS, created_at__lt=cutoff, started_at__lt=cutoff)

    def stale(self, cutoff: datetime) -> RunQuerySet:
        """Running, with no heartbeat since `cutoff`: its worker died (status, heartbeat_at)."""
        return self.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)

    def queued_before(self, cutoff: datetime) -> RunQuerySet:
        """Queued since before `cutoff` and never started (status, created_at)."""
        # created_at <= queued_at: the created_at bound lets the index do the work.
        return self.filter(status=RunStatus.QUEUED, created_at__lt=cutoff, queued_at__lt=cutoff)

    def due(self, now: datetime) -> RunQuerySet:
        """Scheduled to run at or before `now`: the scan queues them (status, run_at)."""
        return self.filter(status=RunStatus.SCHEDULED, run_at__lte=now)

    def expired(self, cutoff: datetime) -> RunQuerySet:
        """Finished before `cutoff`: cleanup deletes them (status, finished_at)."""
        return self.filter(status__in=TERMINAL, finished_at__lt=cutoff)


class Run(models.Model):
    """A unit of generation work, tracked from submission to exactly one terminal state.

    Status changes only through `runs.lifecycle` (conditional UPDATEs); never save a status read
    earlier. Subclasses set `task_name`, the Celery task that runs them.
    """

    task_name: ClassVar[str] = ""
    # The storage folder of the kind's artifacts: each run's under "<artifact_folder>/<id>"
    # (runs.artifacts), which cleanup deletes with the run. Empty: the kind keeps none there.
    artifact_folder: ClassVar[str] = ""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="%(app_label)s_%(class)ss"
    )
    status = models.CharField(max_length=16, choices=RunStatus, default=RunStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)  # 0-100
    stage = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)  # the fence: bumped by each claim
    max_attempts = models.PositiveSmallIntegerField(default=3)
    task_id = models.CharField(max_length=255, blank=True)  # of the last dispatch
    priority = models.CharField(max_length=8, choices=Priority, default=Priority.NORMAL)
    # NULL, not "": runs without a key must not collide in the unique (owner, key) constraint.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)  # sha256 of the create body
    cancel_requested = models.BooleanField(default=False)
    remote_job_id = models.CharField(max_length=255, blank=True)  # while waiting on a provider
    # Results of costly work an earlier attempt finished (RunContext.once), by name.
    checkpoints = models.JSONField(default=dict, blank=True)
    # When to start (a run created with run_at or delay_seconds stays `scheduled` until then).
    run_at = models.DateTimeField(null=True, blank=True)
    # Where the terminal state is POSTed, signed (the webhooks app); empty: nowhere.
    callback_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ("-created_at",)
        indexes = [
            # Maintenance finds its rows through these, never by scanning the table:
            # stale heartbeats (check timeouts), old pending/queued/waiting runs (scan),
            # old finished runs (cleanup).
            models.Index(fields=["status", "heartbeat_at"], name="%(app_label)s_%(class)s_st_hb"),
            models.Index(fields=["status", "created_at"], name="%(app_label)s_%(class)s_st_cr"),
            models.Index(fields=["status", "finished_at"], name="%(app_label)s_%(class)s_st_fin"),
            # The lists, newest first (ORDER BY created_at DESC, id DESC): a user's runs, a user's
            # runs in one status, and everyone's (staff, the admin). InnoDB appends the primary
            # key to every secondary index, so each also orders ties by id without a sort.
            models.Index(fields=["owner", "created_at"], name="%(app_label)s_%(class)s_own_cr"),
            models.Index(
                fields=["owner", "status", "created_at"], name="%(app_label)s_%(class)s_own_st"
            ),
            models.Index(fields=["created_at"], name="%(app_label)s_%(class)s_cr"),
            # Scheduled runs that are due (the scan).
            models.Index(fields=["status", "run_at"], name="%(app_label)s_%(class)s_st_at"),
        ]
        constraints = [
            # NULL keys never collide (MySQL, SQLite and PostgreSQL agree), so no condition is
            # needed, and MySQL could not enforce one.
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"], name="%(app_label)s_%(class)s_idem"
            )
        ]

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    def poll_remote(self) -> None:
        """Check the provider job of a `waiting` run and move the run on; the scan calls this.

        Kinds that hand work to a remote provider register a poller (`runs.waiting`) in their
        AppConfig.ready(); the others never wait.
        """
        waiting.poll(self)


def run_models() -> list[type[Run]]:
    """Every concrete run kind; the apps register nothing."""
    return [model for model in apps.get_models() if issubclass(model, Run)]


class ActiveRunLock(models.Model):
    """The row a submit locks to count its user's active runs (runs/limits.py), one per user,
    made at the user's first capped submit.

    Not the user's own row: a new run's foreign key to its owner takes a shared lock on that row
    (InnoDB checks the parent), so a submit that inserts its run before it locks would deadlock
    with every other submit of the user doing the same. Nothing refers to this row."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"active-run cap lock of user {self.user_id}"
