from __future__ import annotations

from celery import shared_task
from django.conf import settings

from runs import lifecycle

from . import steps
from .models import PodcastRun

SOFT_LIMIT, HARD_LIMIT = settings.TASK_TIME_LIMITS["podcast"]


@shared_task(name="podcast.generate", bind=True, soft_time_limit=SOFT_LIMIT, time_limit=HARD_LIMIT)
def generate_podcast(self, run_id: str) -> None:
    lifecycle.execute(self, PodcastRun, run_id, steps.generate)
