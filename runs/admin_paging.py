"""The admin at any table size: a page count that is an estimate for a whole large table, a
bounded count for a filtered one, exact on small tables and on databases that keep no estimate;
and sorting only by indexed columns."""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

# Under this many rows an exact COUNT(*) is cheap, and the estimate's error would show.
ESTIMATE_ABOVE = 10_000
# A filtered list counts this many matching rows at most (100 pages of 100); more read "10000".
COUNT_LIMIT = 10_000


class EstimatedCountPaginator(Paginator):
    """InnoDB counts a table by reading all of it (a second or more at 1M rows); the page links
    need only the order of magnitude, which the table statistics give for free."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return len(rows)
        if rows.query.where:  # filtered or searched: count what matches, up to the limit
            return rows.order_by()[:COUNT_LIMIT].count()
        estimate = estimated_rows(rows.model, rows.db)
        if estimate is None or estimate < ESTIMATE_ABOVE:
            return rows.count()
        return estimate


def estimated_rows(model: type[Model], alias: str) -> int | None:
    """The table's row count from MySQL's or MariaDB's statistics; None elsewhere."""
    connection = connections[alias]
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_rows FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            [model._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


class IndexedSortChangeList(ChangeList):
    """Sorts only by the columns the admin lets you click (`sortable_by`): Django honours any
    column in a hand-written `?o=`, and at a million rows an unindexed sort reads them all."""

    def get_ordering_field(self, field_name):
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)
