"""Video runs over HTTP: the shared run endpoints plus the media, for the owner and staff only."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action

from runs.api import RunViewSet, created_response
from runs.files import serve_file

from .models import VideoRun
from .serializers import VideoCreateSerializer, VideoSerializer

media_response = extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})


class VideoViewSet(RunViewSet):
    model = VideoRun
    serializer_class = VideoSerializer
    create_serializer_class = VideoCreateSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("result").prefetch_related("result__images")

    @created_response
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @media_response
    @action(detail=True, methods=["get"], url_path="video", url_name="video-file")
    def video_file(self, request, pk=None):
        return serve_file(self.result().video, request)

    @media_response
    @action(detail=True, methods=["get"], url_path="audio", url_name="audio-file")
    def audio_file(self, request, pk=None):
        return serve_file(self.result().audio, request)

    @media_response
    @action(
        detail=True,
        methods=["get"],
        url_path=r"images/(?P<position>[0-9]+)",
        url_name="image-file",
    )
    def image_file(self, request, pk=None, position=None):
        image = self.result().images.filter(position=int(position)).first()
        if image is None:
            raise Http404("This run has no such image.")
        return serve_file(image.image, request)

    def result(self):
        """The result of a run the user may see (others' runs answer 404 from get_object)."""
        result = getattr(self.get_object(), "result", None)
        if result is None:
            raise Http404("This run has no result yet.")
        return result
