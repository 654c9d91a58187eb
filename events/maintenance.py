"""History whose run no longer exists (deleted in the admin, or with its user): found in a
bounded pass over the oldest rows, by primary key, never a scan of the whole table."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from runs.models import run_models

from .models import RunEvent


def prune_orphans(*, batch: int = 1000, max_batches: int = 20, older_than_days=None) -> int:
    """Delete history rows older than the retention whose run is gone; returns how many."""
    days = settings.RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    models = {model._meta.label_lower: model for model in run_models()}
    after, deleted = 0, 0
    for _ in range(max_batches):
        rows = list(
            RunEvent.objects.filter(id__gt=after)
            .order_by("id")
            .values_list("id", "kind", "run_id", "at")[:batch]
        )
        old = [row for row in rows if row[3] < cutoff]
        by_kind: dict[str, set] = defaultdict(set)
        for _, kind, run_id, _ in old:
            by_kind[kind].add(run_id)
        for kind, ids in by_kind.items():
            model = models.get(kind)
            alive = (
                set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))
                if model
                else set()
            )
            if gone := ids - alive:
                deleted += RunEvent.objects.filter(kind=kind, run_id__in=gone).delete()[0]
        if len(old) < len(rows) or len(rows) < batch:  # reached recent history, or the end
            break
        after = rows[-1][0]
    return deleted
