from rest_framework.routers import SimpleRouter

from .views import VideoRunViewSet

router = SimpleRouter()
router.register("videos", VideoRunViewSet, basename="video")

urlpatterns = router.urls
