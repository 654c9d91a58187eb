"""django-celery-beat's DatabaseScheduler behind a leader lease, so two beats never fire twice.

Every beat ticks; only the one holding the lease (a row in `schedules_beatlease`, timed by the
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

from celery import schedules
from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, close_old_connections
from django.db.models import (
    Case,
    CharField,
    DateTimeField,
    ExpressionWrapper,
    F,
    Prefetch,
    Q,
    When,
)
from django.db.models.functions import Cast, Now
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from . import validation
from .models import BeatLease

logger = logging.getLogger(__name__)

LEASE_NAME = "beat"
BROKEN_RETRY_SECONDS = 60  # an entry whose next run cannot be computed is tried again after this


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
    def is_due(self):
        """Never raise: an entry whose next run cannot be computed (it passed the checks at load,
        e.g. a last_run_at so late that adding the interval overflows) waits and is logged."""
        try:
            return super().is_due()
        except Exception as exc:
            logger.error(
                "beat cannot compute the next run of schedule %r (id %s), skipped for %d s: %s",
                self.name,
                self.model.pk,
                BROKEN_RETRY_SECONDS,
                validation.message_of(exc),
            )
            return schedules.schedstate(False, BROKEN_RETRY_SECONDS)

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

    def all_as_schedule(self):
        """The enabled tasks beat can fire. A row it cannot (validation.row_problem: an interval
        that overflows, a crontab that never fires, kwargs that are not an object, ...) is logged
        and skipped, whatever wrote it; the others fire. If the database cannot be read, the
        schedule read last is kept."""
        try:
            models = self.enabled_models()
            problems = validation.stored_problems(
                PeriodicTask.objects.filter(pk__in=[model.pk for model in models])
            )
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("beat %s could not read the schedules: %s", self.holder, exc)
            self._initial_read = True  # read them again at the next tick
            return self._schedule if self._schedule is not None else {}
        schedule = {}
        for model in models:
            problem = problems.get(model.pk)
            if problem is None:
                try:
                    schedule[model.name] = self.Entry(model, app=self.app)
                    continue
                except Exception as exc:  # what the checks did not foresee
                    problem = validation.message_of(exc)
            logger.error("beat skips schedule %r (id %s): %s", model.name, model.pk, problem)
        return schedule

    def enabled_models(self):
        """django-celery-beat's enabled tasks, their crontabs prefetched with the zone read as text:
        its own prefetch loads each zone as an object, and a zone the tz database does not know
        raises there, before any row could be skipped."""
        crontabs = Prefetch("crontab", validation.with_zone_texts(CrontabSchedule.objects.all()))
        queryset = self.enabled_models_qs().prefetch_related(None)
        return list(queryset.prefetch_related("interval", "solar", "clocked", crontabs))

    def _get_unique_timezone_names(self):
        """The crontabs' zones, as text: a zone the tz database does not know would raise while
        loading, and stop beat reading any schedule. Such a crontab is skipped above."""
        zones = (
            CrontabSchedule.objects.annotate(zone=Cast("timezone", CharField(max_length=63)))
            .values_list("zone", flat=True)
            .distinct()
        )
        return [zone for zone in zones if validation.known_zone(zone)]

    def tick(self, *args, **kwargs):
        """Never raise: beat must keep firing the good schedules whatever one of them holds."""
        try:
            return self._leader_tick(*args, **kwargs)
        except Exception:
            logger.exception("beat %s: a tick failed; it keeps going", self.holder)
            return self.max_interval

    def _leader_tick(self, *args, **kwargs):
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
