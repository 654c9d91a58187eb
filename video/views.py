"""Video runs over HTTP: the shared run endpoints plus the media, for the owner and staff only."""

from __future__ import annotations

from django.http import Http404
from rest_framework.decorators import action

from runs.api import RunViewSet
from runs.files import file_schema, serve_file
from runs.submit import Reader

from .models import VideoRun
from .serializers import VideoCreateSerializer, VideoSerializer
from .submit import read_new_video


class VideoViewSet(RunViewSet):
    model = VideoRun
    serializer_class = VideoSerializer
    create_serializer_class = VideoCreateSerializer

    @classmethod
    def lean_reader(cls) -> Reader:
        return read_new_video

    def get_queryset(self):
        return super().get_queryset().select_related("result").prefetch_related("result__images")

    @file_schema("video/mp4")
    @action(detail=True, methods=["get"], url_path="video", url_name="video-file")
    def video_file(self, request, pk=None):
        """The MP4 (H.264 + AAC)."""
        return serve_file(self.result().video, request, "video/mp4")

    @file_schema("audio/wav")
    @action(detail=True, methods=["get"], url_path="audio", url_name="audio-file")
    def audio_file(self, request, pk=None):
        """The narration (WAV)."""
        return serve_file(self.result().audio, request, "audio/wav")

    @file_schema("image/png")
    @action(
        detail=True,
        methods=["get"],
        url_path=r"images/(?P<position>[0-9]+)",
        url_name="image-file",
    )
    def image_file(self, request, pk=None, position=None):
        """A character's portrait (PNG), by its place in `characters` (0 first)."""
        number = int(position) if position and len(position) < 6 else -1
        image = self.result().images.filter(position=number).first()
        if image is None:
            raise Http404("This run has no such image.")
        return serve_file(image.image, request, "image/png")

    def result(self):
        """The result of a run the user may see (others' runs answer 404 from get_object)."""
        result = getattr(self.get_object(), "result", None)
        if result is None:
            raise Http404("This run has no result yet.")
        return result
