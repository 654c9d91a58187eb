"""`manage.py reconcile_artifacts`: the full walk of the artifact storage, on demand."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops import artifacts


class Command(BaseCommand):
    help = (
        "Delete artifact files named by a run id no row has (older than the grace), walking the "
        "whole storage in bounded passes that resume where the last one stopped. Files without "
        "an id in their name are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--files-per-pass",
            type=int,
            default=settings.ARTIFACT_RECONCILE_FILES,
            help="files one pass visits (default: ARTIFACT_RECONCILE_FILES)",
        )
        parser.add_argument(
            "--grace-seconds",
            type=float,
            default=settings.ARTIFACT_ORPHAN_GRACE_SECONDS,
            help="leave files younger than this (default: ARTIFACT_ORPHAN_GRACE_SECONDS)",
        )
        parser.add_argument(
            "--once", action="store_true", help="one pass, then stop (the cursor keeps the place)"
        )

    def handle(
        self, *args: str, files_per_pass: int, grace_seconds: float, once: bool, **options: object
    ) -> None:
        if files_per_pass < 1:
            raise CommandError("--files-per-pass must be at least 1.")
        if grace_seconds < 0:
            raise CommandError("--grace-seconds must be 0 or more.")
        visited = removed = passes = 0
        while True:
            done = artifacts.reconcile(limit=files_per_pass, grace_seconds=grace_seconds)
            if done.visited == 0 and not done.finished:  # the cursor row was locked
                raise CommandError("Another reconciliation is running; try again later.")
            visited, removed, passes = visited + done.visited, removed + done.removed, passes + 1
            if done.finished or once:
                break
        state = "walk finished" if done.finished else "walk under way (run again to continue)"
        self.stdout.write(
            f"{passes} pass(es): {visited} file(s) visited, {removed} orphan(s) removed; {state}."
        )
