"""Operational endpoints: health (no auth), one Celery task's state, and Prometheus metrics."""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
from datetime import timedelta

from celery import current_app
from celery.result import AsyncResult
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from kombu.exceptions import OperationalError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .beat import last_tick
from .models import TERMINAL, run_models

logger = logging.getLogger(__name__)

HEALTH_CACHE_SECONDS = 5  # one real check per process per window, however often it is polled
PING_TIMEOUT_SECONDS = 0.5
# A bucket per order of magnitude a podcast or video takes, from a one-line test to a long render.
DURATION_BUCKETS_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)


# -- Health --------------------------------------------------------------------------------------


def database_ok() -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("health: database unreachable: %s", exc)
        return False
    return True


def broker_ok() -> bool:
    try:
        with current_app.connection_for_write() as conn:
            # One attempt: a health check must answer fast, not wait out the retry policy.
            conn.ensure_connection(max_retries=0, timeout=2)
    except (OperationalError, OSError) as exc:
        logger.warning("health: broker unreachable: %s", exc)
        return False
    return True


def workers_answering() -> int:
    try:
        return len(current_app.control.ping(timeout=PING_TIMEOUT_SECONDS) or [])
    except (OperationalError, OSError):
        return 0


def beat_state() -> dict:
    """`ok` if the leading beat ticked within a few loop intervals, else `stale` or `never`."""
    tick = last_tick()
    if tick is None:
        return {"status": "never", "last_tick": None}
    age = (timezone.now() - tick).total_seconds()
    stale_after = 3 * settings.CELERY_BEAT_MAX_LOOP_INTERVAL + 5
    return {"status": "ok" if age < stale_after else "stale", "last_tick": tick.isoformat()}


def check_health() -> dict:
    """Check everything once; unhealthy if a service is down, degraded if a process is missing."""
    database = database_ok()
    broker = broker_ok()
    workers = workers_answering() if broker else 0
    beat = beat_state() if database else {"status": "unknown", "last_tick": None}
    if not (database and broker):
        status = "unhealthy"
    elif workers and beat["status"] == "ok":
        status = "healthy"
    else:
        status = "degraded"
    return {
        "status": status,
        "database": "ok" if database else "unreachable",
        "broker": "ok" if broker else "unreachable",
        "workers": workers,
        "beat": beat,
        "checked_at": timezone.now().isoformat(),
    }


class HealthCache:
    """The last report, for HEALTH_CACHE_SECONDS. The lock makes concurrent requests wait for one
    check instead of each pinging the workers, so the endpoint cannot be used to load the system."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: dict | None = None
        self._checked = 0.0

    def get(self) -> dict:
        with self._lock:
            if self._report is None or time.monotonic() - self._checked >= HEALTH_CACHE_SECONDS:
                self._report = check_health()
                self._checked = time.monotonic()
            return self._report

    def clear(self) -> None:
        with self._lock:
            self._report = None


health_cache = HealthCache()


class HealthView(APIView):
    """GET /api/health/: 200 when healthy or degraded, 503 when the database or broker is down."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {
                "status": serializers.ChoiceField(["healthy", "degraded", "unhealthy"]),
                "database": serializers.CharField(),
                "broker": serializers.CharField(),
                "workers": serializers.IntegerField(),
                "beat": serializers.DictField(),
                "checked_at": serializers.DateTimeField(),
            },
        )
    )
    def get(self, request):
        report = health_cache.get()
        return Response(report, status=503 if report["status"] == "unhealthy" else 200)


# -- One Celery task -----------------------------------------------------------------------------

TASK_ID = re.compile(r"^[\w.:-]{1,255}$")


def task_owned_by(user, task_id: str) -> bool:
    """Whether the last dispatch of one of the user's runs carried this task id."""
    return any(model.objects.filter(owner=user, task_id=task_id).exists() for model in run_models())


def task_status(task_id: str) -> dict:
    """Celery's view of a task, in the shape the seed's `/api/celery/task/{id}` answered."""
    result = AsyncResult(task_id, app=current_app)
    ready = result.ready()
    successful = result.successful() if ready else None
    body = {
        "task_id": task_id,
        "state": result.state,
        "status": result.state,  # the seed's name for it
        "ready": ready,
        "successful": successful,
        "result": result.result if successful else None,
        "error": None,
    }
    if ready and not successful:
        exc = result.result
        body["error"] = (
            f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        )
    return body


class TaskStatusView(APIView):
    """GET /api/tasks/{id}/: staff see any task; a user only the task of one of their runs."""

    @extend_schema(
        responses=inline_serializer(
            "TaskStatus",
            {
                "task_id": serializers.CharField(),
                "state": serializers.CharField(),
                "status": serializers.CharField(),
                "ready": serializers.BooleanField(),
                "successful": serializers.BooleanField(allow_null=True),
                "result": serializers.JSONField(allow_null=True),
                "error": serializers.CharField(allow_null=True),
            },
        )
    )
    def get(self, request, task_id: str):
        if not TASK_ID.match(task_id):
            raise ValidationError({"task_id": "Not a Celery task id."})
        if not request.user.is_staff and not task_owned_by(request.user, task_id):
            raise NotFound("No such task.")  # the same answer as a task that is someone else's
        return Response(task_status(task_id))


# -- Prometheus metrics --------------------------------------------------------------------------


class StaffOrMetricsToken(permissions.BasePermission):
    """Staff, or a scraper sending `Authorization: Bearer $METRICS_TOKEN`."""

    def has_permission(self, request, view) -> bool:
        if request.user and request.user.is_staff:
            return True
        token = os.environ.get("METRICS_TOKEN", "")
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return bool(token) and hmac.compare_digest(sent.encode(), token.encode())


def kind(model) -> str:
    return model._meta.label_lower


def duration_buckets(model) -> list[dict]:
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


class RunCollector:
    """Reads the run tables at each scrape; nothing is counted in process memory."""

    def collect(self):
        runs = GaugeMetricFamily(
            "mediaruns_runs", "Runs by kind and status.", labels=["kind", "status"]
        )
        durations = HistogramMetricFamily(
            "mediaruns_run_duration_seconds",
            "Seconds from start to finish of finished runs.",
            labels=["kind", "status"],
        )
        for model in run_models():
            rows = model.objects.order_by().values_list("status").annotate(n=Count("pk"))
            for status, count in rows:
                runs.add_metric([kind(model), status], count)
            for row in duration_buckets(model):
                durations.add_metric(
                    [kind(model), row["status"]],
                    histogram_buckets(row),
                    row["total"].total_seconds(),
                )
        yield runs
        yield durations


def histogram_buckets(row: dict) -> list[tuple[str, int]]:
    bounds = [
        (floatToGoString(bound), row[f"le_{index}"])
        for index, bound in enumerate(DURATION_BUCKETS_SECONDS)
    ]
    return [*bounds, ("+Inf", row["count"])]


class MetricsView(APIView):
    """GET /api/metrics: Prometheus text format."""

    permission_classes = (StaffOrMetricsToken,)

    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RunCollector())
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
