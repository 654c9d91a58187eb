from rest_framework.routers import SimpleRouter

from runs.api import RUN_FIELDS, RunCreateSerializer, RunSerializer, RunViewSet

from .models import SleepRun


class SleepRunSerializer(RunSerializer):
    class Meta(RunSerializer.Meta):
        model = SleepRun
        fields = (*RUN_FIELDS, "url", "steps")
        read_only_fields = fields


class SleepRunCreateSerializer(RunCreateSerializer):
    class Meta:
        model = SleepRun
        fields = ("steps", "seconds_per_step", "priority")


class SleepRunViewSet(RunViewSet):
    model = SleepRun
    serializer_class = SleepRunSerializer
    create_serializer_class = SleepRunCreateSerializer


router = SimpleRouter()
router.register("sleep-runs", SleepRunViewSet, basename="sleep-run")
urlpatterns = router.urls
