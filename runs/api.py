"""API pieces every run kind shares: run fields, create with Idempotency-Key, cancel, retry."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING

from django import forms
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils import model_meta

from . import lifecycle, limits
from .idempotency import IDEMPOTENCY_HEADER, fingerprint
from .models import Priority, Run, RunStatus

if TYPE_CHECKING:
    from .submit import Reader

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
    "run_at",
    "callback_url",
)


class RunSerializer(serializers.ModelSerializer):
    """Output fields every run kind shares; subclasses add `result` and their inputs.

    `message` and `error` are for people: the owner reads a sentence with no server paths (a
    failure's traceback stays in `error` for staff, here and in the admin)."""

    url = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    callback_url = serializers.CharField(read_only=True)  # "" when none was given

    class Meta:
        model = Run
        fields: tuple[str, ...] = (*RUN_FIELDS, "url")
        read_only_fields = fields

    def get_url(self, run) -> str:
        view = self.context.get("view")
        return view.detail_url(run) if view else ""

    def for_staff(self) -> bool:
        user = getattr(self.context.get("request"), "user", None)
        return bool(user is not None and user.is_staff)

    def get_message(self, run) -> str:
        """What the run is doing or why it ended (for staff as stored)."""
        return run.message if self.for_staff() else without_paths(first_line(run.message))

    def get_error(self, run) -> str:
        """Why the run failed, as one sentence; staff get the stored text (a traceback)."""
        return run.error if self.for_staff() else readable_error(run.message, run.error)


TRACEBACK = "Traceback (most recent call last)"
# An absolute server path of two or more parts (/srv/app/x.py, C:\app\x), not a URL's path.
SERVER_PATH = re.compile(
    r"(?<![\w:/.~-])(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/:,;()<>]+[\\/])+[^\s'\"\\/:,;()<>]*"
)
EXCEPTION_LINE = re.compile(
    r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure):\s*"
)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def without_paths(text: str) -> str:
    return SERVER_PATH.sub("[server path]", text)


def readable_error(message: str, error: str) -> str:
    """A failure for its owner: the run's message when the error is a traceback, else the error's
    first line; no server paths, no exception class names, one sentence."""
    if not error.strip():
        return ""
    if TRACEBACK in error or len(error.strip().splitlines()) > 1:
        lines = error.strip().splitlines()
        text = message if message.strip() else lines[-1]
    else:
        text = error
    text = EXCEPTION_LINE.sub("", first_line(text))
    return sentence(without_paths(text)) or "The run failed."


def sentence(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."


SCHEDULE_MAX_SECONDS = 30 * 24 * 3600  # a run may be booked at most 30 days ahead
SHARED_CREATE_FIELDS = ("callback_url", "run_at", "delay_seconds")


@extend_schema_field(
    {
        "type": "string",
        "format": "date-time",
        "description": "When to start: ISO 8601 with an offset (2026-11-23T08:00:00+08:00 or "
        "…Z), at most 30 days ahead; a past time runs now.",
    }
)
class RunAtField(serializers.Field):
    """An aware moment, at most SCHEDULE_MAX_SECONDS ahead; a time without an offset is refused
    (whose 08:00 would it be?)."""

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            raise ValidationError("Send an ISO 8601 date and time with an offset, as a string.")
        try:
            moment = parse_datetime(data.strip())
        except (ValueError, OverflowError):
            moment = None
        if moment is None:
            raise ValidationError(
                "Use an existing ISO 8601 date and time with an offset, such as "
                "2026-11-23T08:00:00+08:00 or 2026-11-23T00:00:00Z."
            )
        if timezone.is_naive(moment):
            raise ValidationError("Add an offset (+08:00, Z) to the time: whose time would it be?")
        try:
            year = moment.astimezone(UTC).year
        except (OverflowError, ValueError):
            year = 0
        if year < EARLIEST:
            raise ValidationError(f"Use a time after {EARLIEST}-01-01.")
        ahead = (moment - timezone.now()).total_seconds()
        if ahead > SCHEDULE_MAX_SECONDS:
            raise ValidationError(
                f"At most {SCHEDULE_MAX_SECONDS // 86400} days ahead; this is "
                f"{ahead / 86400:.1f} days ahead."
            )
        return moment

    def to_representation(self, value):
        return value.isoformat() if value else None


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: no strings, booleans or fractions."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "uri", "maxLength": 2000})
class CallbackUrlField(serializers.CharField):
    """An http(s) URL the terminal state is POSTed to. Whether its host may be private is the
    webhooks app's rule, checked on create through `callback_url_checks`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)
        self.validators.append(URLValidator(schemes=["http", "https"]))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# Checks apps add to callback_url (webhooks: no private addresses); each raises ValidationError.
callback_url_checks: list[Callable[[str], None]] = []


class RunCreateSerializer(serializers.ModelSerializer):
    """A new run (the fields every kind shares: `priority`, `callback_url`, and `run_at` or
    `delay_seconds` for a run that waits `scheduled` until then). Every kind's create takes the
    shared fields without listing them."""

    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.NORMAL)
    callback_url = CallbackUrlField(
        required=False,
        allow_blank=True,
        help_text="POSTed the run's JSON, signed (X-Signature), when it ends.",
    )
    run_at = RunAtField(required=False, help_text="When to start (ISO 8601 with an offset).")
    delay_seconds = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=SCHEDULE_MAX_SECONDS,
        help_text="Start this many seconds from now (at most 30 days); instead of run_at.",
    )

    def get_field_names(self, declared_fields, info):
        names = list(super().get_field_names(declared_fields, info))
        return (*names, *(name for name in SHARED_CREATE_FIELDS if name not in names))

    def validate_callback_url(self, url: str) -> str:
        if url:
            for check in callback_url_checks:
                check(url)
        return url

    def create(self, validated_data):
        model: type[Run] = self.Meta.model
        info = model_meta.get_field_info(model)
        many = {
            name: validated_data.pop(name)
            for name, relation in info.relations.items()
            if relation.to_many and name in validated_data
        }
        run = model.objects.create(**validated_data)
        for name, values in many.items():
            getattr(run, name).add(*values)  # a new run has none: add() skips set()'s read
        return run

    def to_internal_value(self, data):
        attrs = super().to_internal_value(data)
        delay = attrs.pop("delay_seconds", None)
        if delay is not None and "run_at" in attrs:
            both = "Send run_at or delay_seconds, not both."
            raise ValidationError({"run_at": [both], "delay_seconds": [both]})
        now = timezone.now()
        if delay is not None:
            attrs["run_at"] = now + timedelta(seconds=delay)
        run_at = attrs.get("run_at")
        attrs["status"] = (
            RunStatus.SCHEDULED if run_at is not None and run_at > now else RunStatus.PENDING
        )
        return attrs


# The list filters (django-filter): ?status=a,b, ?created_after=, ?created_before=

STATUS_HELP = f"Comma-separated statuses, any of: {', '.join(RunStatus.values)}."
MOMENT_HELP = (
    "Created at or after (created_after) or before (created_before): an ISO 8601 date "
    "(midnight, server time zone) or datetime between 1000-01-01 and 9999-12-31, such as "
    "2026-11-23 or 2026-11-23T08:00:00Z."
)
EARLIEST, LATEST = 1000, 9999  # years MySQL's DATETIME holds


class StatusListField(forms.CharField):
    def to_python(self, value) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        wanted = [part for part in text.split(",") if part]
        unknown = sorted(set(wanted) - set(RunStatus.values))
        if unknown:
            shown = ", ".join(repr(name[:30]) for name in unknown[:5])
            raise forms.ValidationError(
                f"Unknown status {shown}; use {', '.join(RunStatus.values)}."
            )
        return wanted


class MomentField(forms.Field):
    def to_python(self, value) -> datetime | None:
        if value in (None, ""):
            return None
        moment = parse_moment(str(value))
        if moment is None:
            raise forms.ValidationError(
                "Use an existing ISO 8601 date or datetime, such as 2026-11-23."
            )
        try:
            year = moment.astimezone(UTC).year
        except (OverflowError, ValueError):
            year = 0
        if not EARLIEST <= year <= LATEST:
            raise forms.ValidationError(f"Use a date between {EARLIEST}-01-01 and {LATEST}-12-31.")
        return moment


@extend_schema_field({"type": "string", "description": STATUS_HELP})
class StatusFilter(filters.Filter):
    field_class = StatusListField

    def filter(self, qs, value):
        return qs.filter(status__in=value) if value else qs


@extend_schema_field({"type": "string", "description": MOMENT_HELP})
class MomentFilter(filters.Filter):
    field_class = MomentField


class RunFilter(filters.FilterSet):
    status = StatusFilter()
    created_after = MomentFilter(field_name="created_at", lookup_expr="gte")  # at or after
    created_before = MomentFilter(field_name="created_at", lookup_expr="lt")


def parse_moment(raw: str) -> datetime | None:
    """An aware datetime from an ISO date (midnight, local time) or datetime; None if unreadable."""
    try:
        moment = parse_datetime(raw) or (
            datetime.combine(day, time.min) if (day := parse_date(raw)) else None
        )
        if moment is not None and timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
    except (ValueError, OverflowError):
        return None
    return moment


# Schema of the answers

RunAccepted = inline_serializer(
    "RunAccepted",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=RunStatus.choices),
        "url": serializers.URLField(),
    },
)
RunStatusChange = inline_serializer(
    "RunStatusChange",
    {"id": serializers.UUIDField(), "status": serializers.ChoiceField(choices=RunStatus.choices)},
)

created_response = extend_schema(
    parameters=[
        OpenApiParameter(
            IDEMPOTENCY_HEADER,
            {"type": "string", "minLength": 1, "maxLength": 255},
            OpenApiParameter.HEADER,
            description="Same key and body: the first answer again, no second run. "
            "Same key, other body: 422.",
        )
    ],
    responses={202: RunAccepted, 422: None},
)


class RunViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Submit, list, poll, cancel and retry runs of one kind. A user sees only their own runs.

    Submits are throttled per user (THROTTLE_SUBMIT_RATE) and capped by the user's active runs
    (RUN_ACTIVE_LIMIT_PER_USER); both answer 429 with Retry-After."""

    model: type[Run]
    create_serializer_class: type[serializers.Serializer]
    lookup_value_regex = "[0-9a-f-]{36}"
    filter_backends = (filters.DjangoFilterBackend,)
    filterset_class = RunFilter
    throttle_classes = (limits.SubmitThrottle,)
    throttled_actions = ("create",)

    @classmethod
    def lean_reader(cls) -> Reader | None:
        """The kind's reader for the lean submit (runs/submit.py); None: every POST through DRF."""
        return None

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        """The router's views; the one that creates answers plain submits on the lean path."""
        view = super().as_view(actions, **initkwargs)
        if (actions or {}).get("post") != "create":
            return view
        from .submit import with_lean_submit  # it builds on this module

        return with_lean_submit(cls, view, initkwargs["basename"])

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built with no user
            return self.model.objects.none()
        return self.model.objects.for_user(self.request.user)

    def get_serializer_class(self):
        return self.create_serializer_class if self.action == "create" else self.serializer_class

    @created_response
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
                limits.check_active_runs(request.user)
                scheduled = serializer.validated_data["status"] == RunStatus.SCHEDULED
                run = serializer.save(
                    owner=request.user,
                    idempotency_key=key or None,
                    request_fingerprint=body_hash,
                    **({} if scheduled else lifecycle.queued_on_insert()),
                )
                if not scheduled:  # a scheduled one waits for the scan
                    lifecycle.send_on_commit(run)
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
        data = {"id": str(run.pk), "status": run.status, "url": self.detail_url(run)}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})

    def detail_url(self, run: Run) -> str:
        return reverse(f"{self.basename}-detail", args=[run.pk], request=self.request)

    @extend_schema(request=None, responses={202: RunStatusChange, 409: None})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        if not lifecycle.request_cancel(run, by=acting_as(request, run)):
            return conflict(f"The run is already {run.status}; there is nothing to cancel.")
        return Response({"id": str(run.pk), "status": run.status}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunStatusChange, 409: None})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = self.get_object()
        if not lifecycle.retry(run, by=acting_as(request, run)):
            return conflict(
                "Only failed, cancelled or timed-out runs can be retried; "
                f"this one is {run.status}."
            )
        return Response({"id": str(run.pk), "status": run.status}, status=status.HTTP_202_ACCEPTED)


def acting_as(request, run: Run) -> str:
    """Who asks, for the run's history: its owner, or staff acting on someone's run."""
    return "user" if request.user.pk == run.owner_id else "staff"


def conflict(message: str) -> Response:
    return Response({"status": [message]}, status=status.HTTP_409_CONFLICT)
