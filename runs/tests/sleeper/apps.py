from django.apps import AppConfig


class SleeperConfig(AppConfig):
    name = "runs.tests.sleeper"
    label = "sleeper"
