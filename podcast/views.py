"""The podcast API: sources, episode and speaker profiles, and podcast runs with their audio."""

from __future__ import annotations

from django.db.models import ProtectedError, prefetch_related_objects
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from runs.api import RunViewSet
from runs.files import file_schema, serve_file
from runs.submit import Reader

from .models import EpisodeProfile, PodcastRun, Source, SpeakerProfile
from .serializers import (
    EpisodeProfileSerializer,
    PodcastCreateSerializer,
    PodcastSerializer,
    SourceListSerializer,
    SourceSerializer,
    SpeakerProfileSerializer,
)
from .submit import read_new_podcast


class ReadForUsersWriteForStaff(permissions.IsAuthenticated):
    """Profiles are shared by every user, so only staff change them."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


class SourceViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A user's source documents; JSON `{"title", "content"}` or a multipart `file` upload."""

    queryset = Source.objects.all()

    def get_queryset(self):
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):  # the schema is built with no user
            return self.queryset.none()
        return self.queryset if user.is_staff else self.queryset.filter(owner_id=user.pk)

    def get_serializer_class(self):
        return SourceListSerializer if self.action == "list" else SourceSerializer

    def perform_create(self, serializer) -> None:
        serializer.save(owner=self.request.user)


class ProfileViewSet(viewsets.ModelViewSet):
    """Shared profiles, addressed by slug; one that runs still use cannot be deleted."""

    permission_classes = (ReadForUsersWriteForStaff,)
    lookup_field = "slug"
    cursor_ordering = ("slug",)  # unique (runs.pagination.CursorPages)

    @extend_schema(responses={204: None, 409: None})
    def destroy(self, request, *args, **kwargs):
        try:
            return super().destroy(request, *args, **kwargs)
        except ProtectedError:
            message = "Runs use this profile; it cannot be deleted."
            return Response({"slug": [message]}, status=status.HTTP_409_CONFLICT)


class EpisodeProfileViewSet(ProfileViewSet):
    queryset = EpisodeProfile.objects.all()
    serializer_class = EpisodeProfileSerializer


class SpeakerProfileViewSet(ProfileViewSet):
    queryset = SpeakerProfile.objects.prefetch_related("speakers")
    serializer_class = SpeakerProfileSerializer


class PodcastViewSet(RunViewSet):
    """Submit an episode, poll it, cancel or retry it, and fetch its MP3."""

    model = PodcastRun
    serializer_class = PodcastSerializer
    create_serializer_class = PodcastCreateSerializer

    @classmethod
    def lean_reader(cls) -> Reader:
        return read_new_podcast

    def get_queryset(self):
        # The profiles are fetched apart (two rows), not joined: an INNER JOIN lets MariaDB start
        # from the small profile table and sort every run of the user. The result's join is a
        # LEFT JOIN, which keeps the runs first and the newest-first index in use.
        runs = super().get_queryset().select_related("result")
        return runs.prefetch_related("episode_profile", "speaker_profile")

    def paginate_queryset(self, queryset):
        # A run shows the sources recorded when it was made (sources_snapshot). Only a run
        # without that record reads its sources, all of the page's in one query: the join to the
        # small source table would otherwise be paid for every page.
        page = super().paginate_queryset(queryset)
        if page is not None:
            prefetch_related_objects([run for run in page if not run.sources_snapshot], "sources")
        return page

    @file_schema("audio/mpeg")
    @action(detail=True, methods=["get"])
    def audio(self, request, pk=None):
        """The episode's MP3, for its owner and staff only (others get 404, like the run)."""
        run = self.get_object()
        result = getattr(run, "result", None)
        return serve_file(result.audio if result else None, request, "audio/mpeg")
