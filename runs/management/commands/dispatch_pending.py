from django.core.management.base import BaseCommand

from runs.outbox import relay_pending


class Command(BaseCommand):
    help = "Dispatch runs left pending because the broker was down when they were submitted."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=0,
            metavar="SECONDS",
            help="only runs created at least this many seconds ago (default 0)",
        )

    def handle(self, *args, older_than: float, **options):
        sent = relay_pending(older_than_seconds=older_than)
        self.stdout.write(f"Dispatched {sent} pending run(s).")
