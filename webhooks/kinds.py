"""Run kinds as the API serves them: found in the URL conf, so no kind registers anything."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from runs.api import RunViewSet
from runs.models import Run


def run_viewset(callback) -> type[RunViewSet] | None:
    """The RunViewSet behind a URL's view when it is a run's detail (retrieve), else None."""
    cls = getattr(callback, "cls", None)
    actions = getattr(callback, "actions", None) or {}
    if isinstance(cls, type) and issubclass(cls, RunViewSet) and actions.get("get") == "retrieve":
        return cls
    return None


@cache
def detail_names() -> dict[type[Run], str]:
    """Each run model → the URL name of its detail view (e.g. "podcast-detail")."""
    found: dict[type[Run], str] = {}

    def walk(patterns, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, inner)
            elif isinstance(entry, URLPattern) and entry.name:
                viewset = run_viewset(entry.callback)
                if viewset is not None:
                    found.setdefault(viewset.model, f"{namespace}{entry.name}")

    walk(get_resolver().url_patterns, "")
    return found


def kind_name(model: type[Run]) -> str:
    """`podcast`, `video`: the model's name without its `run`."""
    name = model._meta.model_name or ""
    return name.removesuffix("run") or name


def run_url(model: type[Run], run_id) -> str:
    """The run's absolute API URL, on WEBHOOK_PUBLIC_URL (no request to build it from)."""
    name = detail_names().get(model)
    if name is None:
        return ""
    return settings.WEBHOOK_PUBLIC_URL + reverse(name, args=[run_id])
