from django.urls import path, re_path
from rest_framework.authtoken.views import obtain_auth_token

from .views import HealthView, MetricsView, TaskStatusView

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
    path("health/", HealthView.as_view(), name="health"),
    path("tasks/<str:task_id>/", TaskStatusView.as_view(), name="task-status"),
    re_path(r"^metrics/?$", MetricsView.as_view(), name="metrics"),  # Prometheus omits the slash
]
