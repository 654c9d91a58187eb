"""A user's signing secret, and a run's deliveries with every attempt."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def new_secret() -> str:
    return secrets.token_hex(32)


class WebhookSecret(models.Model):
    """The key a user's deliveries are signed with (HMAC-SHA256); made on first use."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret"
    )
    secret = models.CharField(max_length=64, default=new_secret)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook secret of {self.owner_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # not yet answered with a 2xx; `next_attempt_at` says when to try
    DELIVERED = "delivered"  # a 2xx was recorded: never sent again
    FAILED = "failed"  # gave up (retries spent, or the address is refused)


class WebhookDelivery(models.Model):
    """One run ending to announce: one row per (run, attempt it ended on), so a second signal
    of the same ending finds the row and adds nothing. The body is fixed when the row is made;
    each attempt signs it afresh.

    The row is the truth: a delivery is claimed by a one-row conditional UPDATE on its `token`
    (which the sender of its message set), so a duplicate or redelivered message does nothing;
    `next_attempt_at` is when the scan sends it again (a retry, or a claim whose worker died).
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    run_kind = models.CharField(max_length=100)  # the run model's label, e.g. podcast.podcastrun
    run_id = models.UUIDField()
    run_attempt = models.PositiveSmallIntegerField()
    run_status = models.CharField(max_length=16)  # the terminal state announced
    url = models.URLField(max_length=2000)
    body = models.TextField()  # exactly the bytes POSTed (UTF-8 JSON)
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    token = models.CharField(max_length=32, blank=True)  # of the message that may claim it
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["run_kind", "run_id", "run_attempt"], name="webhooks_one_per_ending"
            )
        ]
        indexes = [
            # The scan: pending deliveries that are due.
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_due"),
            # The cleanup: finished deliveries past retention.
            models.Index(fields=["status", "created_at"], name="webhooks_st_cr"),
        ]

    def __str__(self) -> str:
        return f"delivery of {self.run_kind} {self.run_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One POST: when, how long, and what came back (a status code or an error)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ("number",)
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhooks_attempt_once")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
