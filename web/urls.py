from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="api-docs"), name="home"),
    path("admin/", admin.site.urls),
    path("api/", include("ops.urls")),  # auth token, health, task state, metrics
    path("api/", include("schedules.urls")),
    path("api/", include("podcast.urls")),
    path("api/", include("video.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

if apps.is_installed("runs.tests.sleeper"):  # the test-only run kind, never in production
    urlpatterns.append(path("api/test/", include("runs.tests.sleeper.api")))
