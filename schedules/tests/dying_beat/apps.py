from __future__ import annotations

import os
import sys

from celery.signals import beat_init
from django.apps import AppConfig


def die(**kwargs) -> None:
    print("dying_beat: this beat exits at start, as the test asked", file=sys.stderr, flush=True)
    os._exit(3)


class DyingBeatConfig(AppConfig):
    name = "schedules.tests.dying_beat"
    label = "dying_beat"

    def ready(self) -> None:
        beat_init.connect(die, weak=False, dispatch_uid="dying_beat")
