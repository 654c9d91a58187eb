"""Cursor pages for every list under /api/: newest first, no COUNT, stable while rows are added.

A page number costs an OFFSET (every skipped row read) and a COUNT of everything the filter
matches; at a million runs that is seconds. A cursor carries the last row's position instead, so
each page is one index range read of `page_size + 1` rows, and runs created while a client pages
through never shift the pages it has not read yet.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as ModelValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class CursorPages(CursorPagination):
    """`{"next", "previous", "results"}`; `?cursor=` from those links, `?page_size=` 1 to 100.

    Views sort by their `cursor_ordering` (default: newest first, then id), which an index
    must serve together with the view's filters."""

    ordering = ("-created_at", "-id")
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        return tuple(getattr(view, "cursor_ordering", self.ordering))

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        self.model = queryset.model
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:  # DRF's answer to a cursor it cannot decode
            raise bad_cursor() from exc

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            # A position that is no value of the sort field would fail in the query (a 500).
            field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
            try:
                field.to_python(cursor.position)
            except ModelValidationError as exc:
                raise bad_cursor() from exc
        return cursor


def bad_cursor() -> ValidationError:
    return ValidationError({"cursor": ["Invalid cursor: use the next or previous link as given."]})
