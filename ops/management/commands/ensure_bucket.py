from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from ops.storage import StorageUnavailable, ensure_bucket
from runs.files import is_object_storage


class Command(BaseCommand):
    help = (
        "Create the media bucket when MEDIA_STORAGE=s3 and it is missing (nothing to do for the "
        "local filesystem); safe to run on every start."
    )

    def handle(self, *args, **options):
        if not is_object_storage(default_storage):
            self.stdout.write(f"Media is kept on the local filesystem under {settings.MEDIA_ROOT}.")
            return
        try:
            created = ensure_bucket()
        except StorageUnavailable as exc:
            raise CommandError(str(exc)) from None
        bucket = getattr(default_storage, "bucket_name", "")
        self.stdout.write(
            f"Created the bucket {bucket!r}." if created else f"The bucket {bucket!r} is there."
        )
