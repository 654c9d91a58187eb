"""What the artifact sweep (ops.artifacts) remembers between passes."""

from __future__ import annotations

from django.db import models


class DeletedRun(models.Model):
    """A deleted run whose artifacts the nightly sweep has yet to remove.

    Written in the deleting transaction, one INSERT per deletion (ops.artifacts' pre_delete and
    post_delete receivers: the cleanup's prune, the admin, any ORM delete), so a deletion that
    rolls back leaves none. `name` is blank for the run itself (its
    folders, `<kind>/<run id>/`, go), or one file a deleted result held outside those folders
    (`podcasts/<run id>.mp3`). A run and its result may leave several rows; the sweep handles them
    by run id.
    """

    run_id = models.UUIDField(db_index=True)
    name = models.CharField(max_length=255, blank=True)
    deleted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.run_id} {self.name}".strip()


class SweepCursor(models.Model):
    """Where the slow full reconciliation stopped; one row per walk (`name`).

    `position` is the last storage name a bounded pass visited (blank: the next pass starts a new
    walk); `finished_at` is when a walk last reached the end, which decides when the nightly pass
    starts the next one.
    """

    name = models.CharField(max_length=40, primary_key=True)
    position = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    visited = models.PositiveBigIntegerField(default=0)  # files seen in the walk under way
    removed = models.PositiveBigIntegerField(default=0)  # orphans deleted in the walk under way

    def __str__(self) -> str:
        return self.name
