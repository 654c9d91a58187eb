"""Celery's view of one task, for `GET /api/tasks/{id}/`."""

from __future__ import annotations

import re
from typing import Any

from celery import current_app
from celery.result import AsyncResult

from runs.models import run_models

TASK_ID = re.compile(r"^[\w.:-]{1,255}$")


def task_owned_by(user_id: int | None, task_id: str) -> bool:
    """Whether the last dispatch of one of the user's runs carried this task id."""
    return any(
        model.objects.filter(owner_id=user_id, task_id=task_id).exists() for model in run_models()
    )


def task_status(task_id: str) -> dict[str, Any]:
    """Celery's view of a task, in the shape the seed's `/api/celery/task/{id}` answered."""
    result = AsyncResult(task_id, app=current_app)
    ready = result.ready()
    successful = result.successful() if ready else None
    body = {
        "task_id": task_id,
        "state": result.state,
        "status": result.state,  # the seed's name for it
        "ready": ready,
        "successful": successful,
        "result": result.result if successful else None,
        "error": None,
    }
    if ready and not successful:
        exc = result.result
        body["error"] = (
            f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
        )
    return body
