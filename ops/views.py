"""Operational endpoints: health (no auth), one Celery task's state, and Prometheus metrics."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .health import health_cache
from .metrics import RunCollector, StaffOrMetricsToken
from .task_state import TASK_ID, task_owned_by, task_status


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
                "storage": serializers.CharField(),
                "workers": serializers.IntegerField(),
                "beat": serializers.DictField(),
                "schedules": serializers.DictField(),
                "checked_at": serializers.DateTimeField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        report = health_cache.get()
        return Response(report, status=503 if report["status"] == "unhealthy" else 200)


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
    def get(self, request: Request, task_id: str) -> Response:
        if not TASK_ID.match(task_id):
            raise ValidationError({"task_id": "Not a Celery task id."})
        if not request.user.is_staff and not task_owned_by(request.user.pk, task_id):
            raise NotFound("No such task.")  # the same answer as a task that is someone else's
        return Response(task_status(task_id))


class MetricsView(APIView):
    """GET /api/metrics: Prometheus text format."""

    permission_classes = (StaffOrMetricsToken,)

    @extend_schema(responses={(200, "text/plain"): str})
    def get(self, request: Request) -> HttpResponse:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(RunCollector())
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
