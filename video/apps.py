from django.apps import AppConfig


class VideoConfig(AppConfig):
    name = "video"

    def ready(self) -> None:
        # Imported here, not at the top: apps.py loads before any model exists, and ready() is
        # where Django has apps register their hooks.
        from runs.waiting import register_poller

        from .models import VideoRun
        from .tasks import poll_remote

        register_poller(VideoRun, poll_remote)  # the scan polls waiting video runs through it
