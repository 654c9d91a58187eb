from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Imported here: apps.py loads before any model exists. runs imports nothing of ours: the
        # models' post_delete and the cleanup's steps are where the artifact sweep plugs in.
        from runs import maintenance

        from . import artifacts

        artifacts.connect_receivers()
        maintenance.add_step("cleanup", "orphan_files", artifacts.nightly_pass)
