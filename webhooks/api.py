"""GET/POST /api/webhook-secret/ and GET /api/{podcasts,videos}/{id}/deliveries/."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.http import Http404
from django.urls import Resolver404, resolve
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import kinds
from .models import DeliveryAttempt, WebhookDelivery, WebhookSecret, new_secret


class SecretSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookSecret
        fields = ("secret", "created_at", "rotated_at")
        read_only_fields = fields


class SecretView(APIView):
    """Your webhook signing secret (made on first use); POST replaces it with a new one."""

    @extend_schema(request=None, responses={200: SecretSerializer})
    def get(self, request):
        return Response(SecretSerializer(own_secret(request.user)).data)

    @extend_schema(request=None, responses={200: SecretSerializer})
    def post(self, request):
        secret = own_secret(request.user)
        WebhookSecret.objects.filter(pk=secret.pk).update(
            secret=new_secret(), rotated_at=timezone.now()
        )
        secret.refresh_from_db()
        return Response(SecretSerializer(secret).data)


def own_secret(user) -> WebhookSecret:
    try:
        with transaction.atomic():
            return WebhookSecret.objects.get_or_create(owner=user)[0]
    except IntegrityError:  # made by a concurrent first use
        return WebhookSecret.objects.get(owner=user)


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ("number", "started_at", "duration_ms", "status_code", "error", "succeeded")
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    attempts = AttemptSerializer(source="log", many=True, read_only=True)
    attempt_count = serializers.IntegerField(source="attempts", read_only=True)
    url = serializers.CharField(read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "url",
            "run_status",
            "run_attempt",
            "status",
            "attempt_count",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "attempts",
        )
        read_only_fields = fields


class DeliveriesView(generics.ListAPIView):
    """The webhook deliveries of one run and every attempt of each (status code or error,
    time, duration), newest first in cursor pages like every list. Same ownership as the run:
    another user's run answers 404."""

    serializer_class = DeliverySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "collection",
                str,
                OpenApiParameter.PATH,
                enum=["podcasts", "videos"],
                description="The run's kind, as in its own URL: podcasts or videos.",
            ),
            OpenApiParameter("id", uuid.UUID, OpenApiParameter.PATH, description="The run's id."),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        model = self.run_model()
        run_id = self.kwargs["id"]
        if not model.objects.for_user(self.request.user).filter(pk=run_id).exists():
            raise Http404
        return WebhookDelivery.objects.filter(
            run_kind=model._meta.label_lower, run_id=run_id
        ).prefetch_related("log")

    def run_model(self):
        """The run kind whose URL this path extends (podcasts, videos), or 404."""
        try:
            match = resolve(self.request.path_info.removesuffix("deliveries/"))
        except Resolver404:
            raise Http404 from None
        viewset = kinds.run_viewset(match.func)
        if viewset is None:
            raise Http404
        return viewset.model
