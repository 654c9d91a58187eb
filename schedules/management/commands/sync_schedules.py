from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from schedules.seeding import defaults, sync_schedules
from schedules.validation import InvalidSchedule, broken_schedules


class Command(BaseCommand):
    help = "Create the maintenance schedules that are missing; existing ones keep their edits."

    def handle(self, *args, **options):
        try:
            created = sync_schedules()
            broken = broken_schedules()
        except DatabaseError as exc:
            raise CommandError(
                f"Could not reach the database to create the schedules: {exc}"
            ) from None
        except InvalidSchedule as exc:
            raise CommandError(f"A default schedule is invalid, none was created: {exc}") from None
        kept = len(defaults()) - len(created)
        for name in created:
            self.stdout.write(f"Created schedule {name!r}.")
        self.stdout.write(f"{len(created)} schedule(s) created, {kept} already present and kept.")
        for line in broken:
            self.stderr.write(f"Beat skips the invalid schedule {line}")
