"""API pieces every run kind shares: run fields, create with Idempotency-Key, cancel, retry."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, time

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse

from . import lifecycle
from .models import Priority, Run, RunStatus

IDEMPOTENCY_HEADER = "Idempotency-Key"
RUN_FIELDS = (
    "id",
    "status",
    "progress",
    "stage",
    "message",
    "error",
    "attempt",
    "max_attempts",
    "priority",
    "task_id",
    "created_at",
    "queued_at",
    "started_at",
    "heartbeat_at",
    "finished_at",
)


class RunSerializer(serializers.ModelSerializer):
    """Output fields every run kind shares; subclasses add `result` and their inputs."""

    url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields: tuple[str, ...] = (*RUN_FIELDS, "url")
        read_only_fields = fields

    def get_url(self, run) -> str:
        view = self.context.get("view")
        return view.detail_url(run) if view else ""


class RunCreateSerializer(serializers.ModelSerializer):
    """Input fields every run kind shares."""

    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)


def fingerprint(data) -> str:
    body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


created_response = extend_schema(
    parameters=[
        OpenApiParameter(
            IDEMPOTENCY_HEADER,
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description="Same key and body: the first answer again, no second run. "
            "Same key, other body: 422.",
        )
    ],
    responses={202: None},
)


class RunViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Submit, list, poll, cancel and retry runs of one kind. A user sees only their own runs."""

    model: type[Run]
    create_serializer_class: type[serializers.Serializer]
    lookup_value_regex = "[0-9a-f-]{36}"

    def get_queryset(self):
        runs = self.model.objects.for_user(self.request.user)
        return filter_runs(runs, self.request.query_params)

    def get_serializer_class(self):
        return self.create_serializer_class if self.action == "create" else self.serializer_class

    def create(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not (0 < len(key) <= 255):
            raise ValidationError({IDEMPOTENCY_HEADER: ["Must be 1 to 255 characters."]})
        body_hash = fingerprint(request.data)
        if key:
            earlier = self.model.objects.filter(owner=request.user, idempotency_key=key).first()
            if earlier is not None:
                return self.replay(earlier, body_hash)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                run = serializer.save(
                    owner=request.user, idempotency_key=key or None, request_fingerprint=body_hash
                )
                lifecycle.dispatch_on_commit(run)
        except IntegrityError:
            # A concurrent request with the same key won the race: answer as it did.
            earlier = self.model.objects.filter(owner=request.user, idempotency_key=key).first()
            if key and earlier is not None:
                return self.replay(earlier, body_hash)
            raise
        return self.accepted(run)

    def replay(self, run: Run, body_hash: str) -> Response:
        if run.request_fingerprint != body_hash:
            return Response(
                {IDEMPOTENCY_HEADER: ["This key was used with a different request body."]},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        return self.accepted(run)

    def accepted(self, run: Run) -> Response:
        run.refresh_from_db()
        data = {"id": str(run.pk), "status": run.status, "url": self.detail_url(run)}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})

    def detail_url(self, run: Run) -> str:
        return reverse(f"{self.basename}-detail", args=[run.pk], request=self.request)

    @extend_schema(request=None, responses={202: None, 409: None})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        if not lifecycle.request_cancel(run):
            return conflict(f"The run is already {run.status}; there is nothing to cancel.")
        return Response({"id": str(run.pk), "status": run.status}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None, 409: None})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = self.get_object()
        if not lifecycle.retry(run):
            return conflict(
                "Only failed, cancelled or timed-out runs can be retried; "
                f"this one is {run.status}."
            )
        return Response({"id": str(run.pk), "status": run.status}, status=status.HTTP_202_ACCEPTED)


def conflict(message: str) -> Response:
    return Response({"status": [message]}, status=status.HTTP_409_CONFLICT)


def filter_runs(runs, params):
    """`?status=a,b`, `?created_after=` and `?created_before=` (ISO 8601 dates or datetimes)."""
    errors = {}
    if statuses := params.get("status"):
        wanted = [s for s in statuses.split(",") if s]
        unknown = sorted(set(wanted) - set(RunStatus.values))
        if unknown:
            allowed = ", ".join(RunStatus.values)
            errors["status"] = [f"Unknown status {', '.join(unknown)}; use {allowed}."]
        runs = runs.filter(status__in=wanted)
    bounds = (("created_after", "created_at__gte"), ("created_before", "created_at__lt"))
    for param, lookup in bounds:
        if raw := params.get(param):
            moment = parse_moment(raw)
            if moment is None:
                errors[param] = ["Use an ISO 8601 date or datetime, such as 2026-11-23."]
            else:
                runs = runs.filter(**{lookup: moment})
    if errors:
        raise ValidationError(errors)
    return runs


def parse_moment(raw: str) -> datetime | None:
    """An aware datetime from an ISO date (midnight, local time) or datetime; None if unreadable."""
    try:
        moment = parse_datetime(raw) or (
            datetime.combine(day, time.min) if (day := parse_date(raw)) else None
        )
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
