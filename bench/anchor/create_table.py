"""Create (or empty) the anchor's one table: `python bench/anchor/create_table.py`."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "anchor.settings")

import django

django.setup()
from django.db import connection  # noqa: E402

from anchor.models import AnchorRun  # noqa: E402

if AnchorRun._meta.db_table in connection.introspection.table_names():
    AnchorRun.objects.all().delete()
else:
    with connection.schema_editor() as editor:
        editor.create_model(AnchorRun)
