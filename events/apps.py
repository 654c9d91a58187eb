from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"

    def ready(self) -> None:
        from celery.signals import task_success

        from runs import signals

        from . import receivers

        signals.run_changed.connect(receivers.record_changes, dispatch_uid="events.changes")
        signals.run_progressed.connect(receivers.publish_progress, dispatch_uid="events.progress")
        signals.runs_deleted.connect(receivers.forget_runs, dispatch_uid="events.deleted")
        task_success.connect(receivers.after_cleanup, dispatch_uid="events.after_cleanup")
