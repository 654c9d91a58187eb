"""The run history: a row per status change of any run kind, written in the change's transaction."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class UtcNow(Now):
    """The database's clock in UTC, as Django stores datetimes (MySQL's CURRENT_TIMESTAMP would be
    the session's time zone)."""

    def as_mysql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


class RunEvent(models.Model):
    """A run moved from one status to another: when (database time), on which attempt, on which
    worker (host and pid of the process that made the change), and why.

    No foreign key: the runs live in each kind's table. `kind` is the run model's label
    (`podcast.podcastrun`); cleanup deletes a run's events with the run."""

    run_id = models.UUIDField()
    kind = models.CharField(max_length=100)
    owner_id = models.BigIntegerField(null=True)
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, blank=True)  # "" when the sender did not know
    to_status = models.CharField(max_length=16)
    attempt = models.PositiveSmallIntegerField(default=0)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True)
    reason = models.CharField(max_length=255, blank=True)
    message = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ("at", "id")
        indexes = [models.Index(fields=["run_id", "at"], name="events_run_at")]

    def __str__(self) -> str:
        return f"{self.run_id}: {self.from_status or '?'} -> {self.to_status} ({self.reason})"
