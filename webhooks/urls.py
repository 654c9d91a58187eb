from django.urls import path, re_path

from .api import DeliveriesView, SecretView

urlpatterns = [
    path("webhook-secret/", SecretView.as_view(), name="webhook-secret"),
    # Any run kind's collection (podcasts, videos, test/sleep-runs): the view resolves the run's
    # own URL and applies its kind's ownership rules.
    re_path(
        r"^(?P<collection>[a-z][a-z0-9-]*(?:/[a-z][a-z0-9-]*)?)/"
        r"(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/deliveries/$",
        DeliveriesView.as_view(),
        name="run-deliveries",
    ),
]
