from rest_framework.routers import SimpleRouter

from .views import EpisodeProfileViewSet, PodcastViewSet, SourceViewSet, SpeakerProfileViewSet

router = SimpleRouter()
router.register("sources", SourceViewSet, basename="source")
router.register("episode-profiles", EpisodeProfileViewSet, basename="episode-profile")
router.register("speaker-profiles", SpeakerProfileViewSet, basename="speaker-profile")
router.register("podcasts", PodcastViewSet, basename="podcast")

urlpatterns = router.urls
