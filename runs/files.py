"""Serving run artifacts to users allowed to see them, with byte ranges for media players.

From the local filesystem the file is streamed. From an S3 bucket (MEDIA_STORAGE=s3) the answer
is a redirect to a presigned URL that lives MEDIA_S3_URL_SECONDS (the bucket serves the bytes and
the ranges), or with MEDIA_S3_DOWNLOAD=stream the object passes through in chunks, ranges too.
The caller has checked who may see the file before any of this.
"""

from __future__ import annotations

import mimetypes
import re
import sys
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

RANGE = re.compile(r"^\s*bytes\s*=(.*)$", re.IGNORECASE)  # the unit is case-insensitive
SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)
# Positions longer than this are past any file (and int() of thousands of digits is refused).
MAX_DIGITS = 18
GONE = "The file is gone (it may have been cleaned up)."
WHOLE = "whole"  # ignore the Range header: answer 200 with the whole file

RANGE_PARAMETER = OpenApiParameter(
    "Range",
    {"type": "string", "maxLength": 200},
    OpenApiParameter.HEADER,
    description="One byte range (bytes=0-1023, bytes=1024-, bytes=-500) → 206 with that part; "
    "several ranges or another unit → 200 with the whole file; a range past the end → 416.",
)


def file_schema(media_type: str):
    """The OpenAPI description of a view that answers with `serve_file`."""
    return extend_schema(
        parameters=[RANGE_PARAMETER],
        responses={
            (200, media_type): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            (206, media_type): OpenApiResponse(
                OpenApiTypes.BINARY, description="The part the Range header asked for."
            ),
            302: OpenApiResponse(
                description="With the media in an S3 bucket (MEDIA_STORAGE=s3, "
                "MEDIA_S3_DOWNLOAD=redirect): Location is a presigned URL of the file that "
                "expires after MEDIA_S3_URL_SECONDS; the bucket answers byte ranges itself."
            ),
            416: OpenApiResponse(
                description="No part of the file matches the range (Content-Range: bytes */size)."
            ),
        },
    )


def serve_file(field_file, request=None, content_type: str | None = None) -> HttpResponseBase:
    """The whole file, or the one byte range the request asks for (206) so players can seek.

    RFC 9110: an unsatisfiable or malformed range answers 416 with `Content-Range: bytes */size`;
    several ranges, or a suffix longer than the file, get the whole file."""
    if not field_file:
        raise Http404("This run has no such file yet.")
    content_type = content_type or mimetypes.guess_type(field_file.name)[0]
    content_type = content_type or "application/octet-stream"
    if is_object_storage(field_file.storage):
        if settings.MEDIA_S3_DOWNLOAD == "redirect":
            return redirect_to_object(field_file, content_type)
        return stream_object(field_file, request, content_type)
    if request is not None and (wanted := request.headers.get("Range")):
        try:
            size = field_file.size
        except FileNotFoundError:
            raise Http404(GONE) from None
        span = byte_span(wanted, size)
        if not isinstance(span, str):  # WHOLE: the whole file below
            return serve_range(field_file, span, size, content_type)
    try:
        response = FileResponse(field_file.open("rb"), content_type=content_type)
    except FileNotFoundError:
        raise Http404(GONE) from None
    response["Accept-Ranges"] = "bytes"
    return response


def serve_range(
    field_file, span: tuple[int, int] | None, size: int, content_type: str
) -> HttpResponseBase:
    if span is None:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    first, last = span
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


def is_object_storage(storage: Any) -> bool:
    """True for django-storages' S3 backend. Only looked up once something imported it, so the
    filesystem path never pays for importing boto3."""
    backend = storage.__class__  # sets up a lazy storage (default_storage), importing its backend
    s3 = sys.modules.get("storages.backends.s3")
    return s3 is not None and issubclass(backend, s3.S3Storage)


def redirect_to_object(field_file, content_type: str) -> HttpResponseBase:
    """302 to a presigned GET of the object: the bucket answers ranges itself, so players seek."""
    url = field_file.storage.url(
        field_file.name,
        parameters={"ResponseContentType": content_type},
        expire=settings.MEDIA_S3_URL_SECONDS,
    )
    response = HttpResponseRedirect(url)
    # The URL expires: no cache may keep the redirect longer than this answer.
    response["Cache-Control"] = "private, no-store"
    return response


def stream_object(field_file, request, content_type: str) -> HttpResponseBase:
    """The object (or the one range asked for) read from the bucket in chunks, never whole."""
    from botocore.exceptions import ClientError

    storage = field_file.storage
    client = storage.connection.meta.client
    key = storage._normalize_name(field_file.name)  # with AWS_LOCATION's prefix, as it saved it
    try:
        size = client.head_object(Bucket=storage.bucket_name, Key=key)["ContentLength"]
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            raise Http404(GONE) from None
        raise
    span = (
        byte_span(wanted, size) if request and (wanted := request.headers.get("Range")) else WHOLE
    )
    if span is None:
        return serve_range(field_file, None, size, content_type)
    whole = isinstance(span, str)
    first, last = (0, size - 1) if isinstance(span, str) else span
    ranged = {"Range": f"bytes={first}-{last}"} if size else {}
    body = client.get_object(Bucket=storage.bucket_name, Key=key, **ranged)["Body"]
    response = StreamingHttpResponse(
        ObjectBody(body), status=200 if whole else 206, content_type=content_type
    )
    response["Content-Length"] = str(last - first + 1)
    response["Accept-Ranges"] = "bytes"
    if not whole:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


class ObjectBody:
    """An S3 object's bytes in chunks as they arrive. Django calls close() when the response
    ends, read to the end or not, which hands the connection back."""

    def __init__(self, body: Any, chunk: int = 256 * 1024) -> None:
        self.body = body
        self.chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        return self.body.iter_chunks(self.chunk)

    def close(self) -> None:
        self.body.close()


def byte_span(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) of one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if it cannot be
    served (416); WHOLE for several ranges or another unit (the whole file, 200)."""
    match = RANGE.match(header)
    if not match:
        return WHOLE  # RFC 9110 14.2: a range unit the server does not know is ignored
    specs = match.group(1).split(",")
    if len(specs) > 1:
        return WHOLE
    spec = SPEC.match(specs[0])
    if not spec or spec.groups() == ("", "") or size == 0:
        return None
    start, end = spec.groups()
    if start == "":  # the last n bytes; more than the file is the whole file
        if len(end) <= MAX_DIGITS and int(end) == 0:
            return None
        suffix = size if len(end) > MAX_DIGITS else min(int(end), size)
        return size - suffix, size - 1
    if len(start) > MAX_DIGITS:
        return None  # starts past the end
    first = int(start)
    last = size - 1 if end == "" or len(end) > MAX_DIGITS else int(end)
    if last < first or first >= size:
        return None
    return first, min(last, size - 1)
