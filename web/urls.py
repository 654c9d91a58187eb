from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from runs.api_schema import DocsView
from runs.limits import TokenView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="api-docs"), name="home"),
    path("admin/", admin.site.urls),
    # The token endpoint with throttle, login lockout and strict parsers (runs/limits.py); first,
    # so it answers before the plain one in ops.urls.
    path("api/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/", include("ops.urls")),  # auth token, health, task state, metrics
    path("api/", include("schedules.urls")),
    path("api/", include("podcast.urls")),
    path("api/", include("video.urls")),
    path("api/", include("webhooks.urls")),  # the signing secret, each run's deliveries
    path("api/", include("events.urls")),  # run history and live event streams, every kind
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="api-docs"),
]

if apps.is_installed("runs.tests.sleeper"):  # the test-only run kind, never in production
    urlpatterns.append(path("api/test/", include("runs.tests.sleeper.api")))
