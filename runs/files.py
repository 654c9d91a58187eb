"""Serving run artifacts to users allowed to see them, with byte ranges for media players."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
GONE = "The file is gone (it may have been cleaned up)."


def serve_file(field_file, request=None) -> HttpResponseBase:
    """The whole file, or the one byte range the request asks for (206) so players can seek."""
    if not field_file:
        raise Http404("This run has no such file yet.")
    if request is not None and (wanted := request.headers.get("Range")):
        return serve_range(field_file, wanted)
    try:
        response = FileResponse(field_file.open("rb"))
    except FileNotFoundError:
        raise Http404(GONE) from None
    response["Accept-Ranges"] = "bytes"
    return response


def serve_range(field_file, header: str) -> HttpResponseBase:
    try:
        size = field_file.size
    except FileNotFoundError:
        raise Http404(GONE) from None
    span = byte_span(header, size)
    if span is None:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    first, last = span
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    # Streamed in chunks: players ask for `bytes=0-`, which is the whole file.
    partial = StreamingHttpResponse(
        read_span(field_file, first, last), status=206, content_type=content_type
    )
    partial["Content-Length"] = str(last - first + 1)
    partial["Content-Range"] = f"bytes {first}-{last}/{size}"
    partial["Accept-Ranges"] = "bytes"
    return partial


def read_span(field_file, first: int, last: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    with field_file.open("rb") as handle:
        handle.seek(first)
        left = last - first + 1
        while left > 0 and (data := handle.read(min(chunk, left))):
            left -= len(data)
            yield data


def byte_span(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if unsatisfiable."""
    match = RANGE.match(header.strip())
    if not match or match.groups() == ("", "") or size == 0:
        return None
    start, end = match.groups()
    if start == "":  # the last n bytes
        return max(0, size - int(end)), size - 1
    first, last = int(start), min(int(end) if end else size - 1, size - 1)
    return (first, last) if first <= last else None
