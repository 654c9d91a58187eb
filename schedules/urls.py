from rest_framework.routers import SimpleRouter

from .api import SchedulesViewSet

router = SimpleRouter()
router.register("schedules", SchedulesViewSet, basename="schedule")  # /api/schedules/, staff only
urlpatterns = router.urls
