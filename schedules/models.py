"""Tables behind the maintenance schedules: the beat leader lease and the schedule audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BeatLease(models.Model):
    """One row per lease name: which beat process may fire schedules, and until when.

    Times are the database's clock (`Now()`), so beats on hosts with skewed clocks still agree.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=255)  # host:pid:nonce of the leading beat
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ticked_at = models.DateTimeField()  # the leader's most recent tick (the health check reads it)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"


class ScheduleChange(models.Model):
    """One change to a periodic task or to a schedule it uses: who, when, what from what to what."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"
        RUN_NOW = "run now"

    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    source = models.CharField(max_length=32)  # admin, api, sync_schedules, system
    action = models.CharField(max_length=16, choices=Action)
    # No foreign keys to django_celery_beat: the trail must outlive the rows it describes.
    object_type = models.CharField(max_length=32)  # periodictask, intervalschedule, crontabschedule
    object_id = models.PositiveIntegerField()
    object_repr = models.CharField(max_length=255)
    changes = models.JSONField(default=dict)  # {field: [old, new]}

    class Meta:
        ordering = ("-at", "-id")
        indexes = [
            models.Index(fields=["object_type", "object_id", "at"], name="schedules_change_obj")
        ]

    def __str__(self) -> str:
        who = self.actor_name or self.source
        return f"{self.action} {self.object_type} {self.object_repr} by {who}"
