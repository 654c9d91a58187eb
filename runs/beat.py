"""django-celery-beat's DatabaseScheduler behind a leader lease, so two beats never fire twice.

Every beat ticks; only the one holding the lease (a row in `runs_beatlease`, timed by the
database's clock) fires. The leader renews the lease as it ticks (at least every
CELERY_BEAT_MAX_LOOP_INTERVAL seconds); a follower takes the lease once it has expired, so a killed
leader is replaced within BEAT_LEASE_SECONDS plus one follower tick. The new leader re-reads the
schedule, including the `last_run_at` the old one saved after each firing, so nothing fires twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, close_old_connections
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, When
from django.db.models.functions import Now
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from .schedule_models import BeatLease

logger = logging.getLogger(__name__)

LEASE_NAME = "beat"


def last_tick() -> datetime | None:
    """When the leading beat last ticked (aware), or None if no beat ever led or the DB is down."""
    try:
        return BeatLease.objects.filter(name=LEASE_NAME).values_list("ticked_at", flat=True).first()
    except (DatabaseError, InterfaceError):
        logger.warning("could not read the beat lease", exc_info=True)
        return None


def lease_holder() -> str | None:
    """The beat that holds an unexpired lease now, if any."""
    row = BeatLease.objects.filter(name=LEASE_NAME, expires_at__gt=Now()).first()
    return row.holder if row else None


def _in_db_time(seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def hold_lease(holder: str, seconds: float, name: str = LEASE_NAME) -> bool:
    """Take or renew the lease for `holder` if it is free, expired or already ours; True if held.

    One conditional UPDATE decides, so of two beats racing for an expired lease exactly one wins.
    """
    renewed = (
        BeatLease.objects.filter(name=name)
        .filter(Q(holder=holder) | Q(expires_at__lt=Now()))
        .update(
            # First: MySQL assigns left to right, so later SETs would see the new holder.
            acquired_at=Case(When(holder=holder, then=F("acquired_at")), default=Now()),
            holder=holder,
            expires_at=_in_db_time(seconds),
            ticked_at=Now(),
        )
    )
    if renewed:
        return True
    if BeatLease.objects.filter(name=name).exists():
        return False
    try:
        BeatLease.objects.create(
            name=name,
            holder=holder,
            acquired_at=Now(),
            expires_at=_in_db_time(seconds),
            ticked_at=Now(),
        )
    except IntegrityError:  # another beat created it first
        return False
    return True


def release_lease(holder: str, name: str = LEASE_NAME) -> None:
    """Let a follower take over at its next tick instead of waiting for the lease to expire."""
    BeatLease.objects.filter(name=name, holder=holder).update(expires_at=Now())


class LeaderEntry(ModelEntry):
    def save(self):
        """Write only the run bookkeeping, so an admin edit saved meanwhile is never overwritten."""
        PeriodicTask.objects.filter(pk=self.model.pk).update(
            last_run_at=self.model.last_run_at, total_run_count=self.model.total_run_count
        )


class LeaderScheduler(DatabaseScheduler):
    """A DatabaseScheduler that fires only while it holds the beat lease."""

    Entry = LeaderEntry

    def __init__(self, *args, **kwargs):
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = settings.BEAT_LEASE_SECONDS
        self.leading = False
        self._renewed_at = 0.0  # monotonic time of the last successful renewal
        super().__init__(*args, **kwargs)

    def install_default_entries(self, data):
        """Skip celery.backend_cleanup: runs.cleanup deletes expired results in batches instead."""

    def tick(self, *args, **kwargs):
        leading = self._still_leading()
        if leading and not self.leading:
            self._take_over()
        elif self.leading and not leading:
            logger.warning("beat %s lost the lease; it stops firing", self.holder)
            self._dirty.clear()  # the new leader's last_run_at wins
        self.leading = leading
        if not leading:
            return min(self.max_interval, self.lease_seconds / 3)
        return min(super().tick(*args, **kwargs), self.max_interval)

    def _still_leading(self) -> bool:
        """Renew the lease, at most once a second: a renewal that recent cannot have expired yet."""
        if self.leading and time.monotonic() - self._renewed_at < 1:
            return True
        try:
            close_old_connections()
            held = hold_lease(self.holder, self.lease_seconds)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning(
                "beat %s cannot reach the database to renew its lease: %s", self.holder, exc
            )
            held = False
        if held:
            self._renewed_at = time.monotonic()
        return held

    def _take_over(self) -> None:
        """Start from the database: the previous leader saved when it last fired each task."""
        logger.info("beat %s now leads and fires the schedules", self.holder)
        self._dirty.clear()
        self._schedule = self.all_as_schedule()
        self._last_timestamp = self.Changes.last_change()
        self._heap = None

    def should_sync(self):
        """Save last_run_at right after each firing, so a successor never repeats a firing."""
        return bool(self._dirty) or super().should_sync()

    def close(self):
        super().close()
        if self.leading:
            try:
                release_lease(self.holder)
            except (DatabaseError, InterfaceError):
                logger.warning("beat %s could not release its lease", self.holder)
