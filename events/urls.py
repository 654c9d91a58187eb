"""Under /api/: the live streams and the history of every run kind's runs."""

from django.urls import path

from .views import RunHistoryView, all_events, run_events

urlpatterns = [
    path("events/", all_events, name="events"),
    # <path:kind>: a kind's collection may have a slash (the test kind's test/sleep-runs).
    path("<path:kind>/<uuid:pk>/events/", run_events, name="run-events"),
    path("<path:kind>/<uuid:pk>/history/", RunHistoryView.as_view(), name="run-history"),
]
