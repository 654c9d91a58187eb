"""Prometheus metrics read from the run tables at each scrape (`GET /api/metrics`)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from runs.models import TERMINAL, Run, run_models

from .checks import runs_by_status

# A bucket per order of magnitude a podcast or video takes, from a one-line test to a long render.
DURATION_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class StaffOrMetricsToken(permissions.BasePermission):
    """Staff, or a scraper sending `Authorization: Bearer <settings.METRICS_TOKEN>`."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.user and request.user.is_staff:
            return True
        token = settings.METRICS_TOKEN
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return bool(token) and hmac.compare_digest(sent.encode(), token.encode())


def duration_buckets(model: type[Run]) -> list[Mapping[str, Any]]:
    """Per terminal status: count, total seconds and cumulative bucket counts, in one query."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{index}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(DURATION_BUCKETS_SECONDS)
    }
    return list(
        model.objects.filter(
            status__in=TERMINAL, started_at__isnull=False, finished_at__isnull=False
        )
        .annotate(duration=duration)
        .order_by()
        .values("status")
        .annotate(count=Count("pk"), total=Sum("duration"), **buckets)
    )


def histogram_buckets(row: Mapping[str, Any]) -> list[tuple[str, int]]:
    bounds = [
        (floatToGoString(bound), row[f"le_{index}"])
        for index, bound in enumerate(DURATION_BUCKETS_SECONDS)
    ]
    return [*bounds, ("+Inf", row["count"])]


class RunCollector:
    """Reads the run tables at each scrape; nothing is counted in process memory."""

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            "mediaruns_runs", "Runs by kind and status.", labels=["kind", "status"]
        )
        for kind, by_status in runs_by_status().items():
            for status, count in by_status.items():
                runs.add_metric([kind, status], count)
        durations = HistogramMetricFamily(
            "mediaruns_run_duration_seconds",
            "Seconds from start to finish of finished runs.",
            labels=["kind", "status"],
        )
        for model in run_models():
            for row in duration_buckets(model):
                durations.add_metric(
                    [model._meta.label_lower, row["status"]],
                    histogram_buckets(row),
                    row["total"].total_seconds(),
                )
        yield runs
        yield durations
