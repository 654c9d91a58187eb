from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Imported here: apps.py loads before any model exists. runs imports nothing of ours;
        # the lifecycle's signal, the scan's steps and the create checks are where we plug in.
        from runs import api, maintenance
        from runs.signals import run_changed

        from . import addresses, delivery

        run_changed.connect(delivery.on_run_changed, dispatch_uid="webhooks.on_run_changed")
        maintenance.add_step("scan", "webhooks", delivery.send_due)
        maintenance.add_step("cleanup", "webhook_deliveries", delivery.prune)
        if addresses.check_callback_url not in api.callback_url_checks:
            api.callback_url_checks.append(addresses.check_callback_url)
