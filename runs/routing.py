"""Where a task's message goes and at which priority, in the order of the broker it goes to.

Settings hold the routes (TASK_ROUTES) with priorities as levels, 0 lowest to 9 highest. Redis
serves priority 0 first and RabbitMQ the highest number first, so a level becomes the broker's
number here, as the message is sent, from the broker this app sends to: a process never carries
the other broker's order, whichever broker it was started for or is pointed at later.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from celery import current_app
from django.conf import settings

from .models import Priority

HIGHEST_LEVEL = 9
# A run's priority as a level (the route's level is the default for a run's kind).
RUN_PRIORITY_LEVELS: dict[str, int] = {Priority.HIGH: 9, Priority.NORMAL: 5, Priority.LOW: 0}


def serves_zero_first(broker_url: str | None = None) -> bool:
    """Redis (kombu's priority lists) serves 0 first; AMQP serves the highest number first."""
    url = broker_url or current_app.conf.broker_url
    return url.split("://", 1)[0] in ("redis", "rediss")


def broker_priority(level: int, broker_url: str | None = None) -> int:
    """A level (0 lowest, 9 highest) as the message priority the broker understands."""
    return HIGHEST_LEVEL - level if serves_zero_first(broker_url) else level


def route_task(
    name: str, args: Any, kwargs: Any, options: dict, task: Any = None, **kw: Any
) -> dict[str, Any] | None:
    """Celery's router: the first TASK_ROUTES pattern that matches the task's name."""
    routes: dict[str, dict[str, Any]] = settings.TASK_ROUTES
    for pattern, route in routes.items():
        if fnmatchcase(name, pattern):
            return {"queue": route["queue"], "priority": broker_priority(int(route["level"]))}
    return None
