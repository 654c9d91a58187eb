"""Who polls the provider job of a `waiting` run: each kind that waits registers its poller.

A kind registers in its AppConfig.ready() (video: `video.tasks.poll_remote`), so the model never
imports its steps; `Run.poll_remote`, which the scan calls, looks the poller up here. Kinds that
never hand work to a provider register nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)

_pollers: dict[type[models.Model], Callable[[Any], None]] = {}


def register_poller(model: type[M], poller: Callable[[M], None]) -> None:
    """`poller(run)` asks the provider about a waiting run of `model` and moves the run on."""
    _pollers[model] = poller


def has_poller(model: type[models.Model]) -> bool:
    """Whether the scan has anything to poll for this kind's waiting runs."""
    return model in _pollers


def poll(run: models.Model) -> None:
    poller = _pollers.get(type(run))
    if poller is not None:
        poller(run)
