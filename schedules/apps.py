from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Schedules"

    def ready(self) -> None:
        from . import audit  # imports models, so only once the app registry is ready

        audit.connect_signals()
