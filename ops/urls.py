from django.urls import path, re_path

from .views import HealthView, MetricsView, TaskStatusView

urlpatterns = [
    path("health/", HealthView.as_view(), name="health"),
    path("tasks/<str:task_id>/", TaskStatusView.as_view(), name="task-status"),
    re_path(r"^metrics/?$", MetricsView.as_view(), name="metrics"),  # Prometheus omits the slash
]
