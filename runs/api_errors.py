"""Every answer under /api/ is JSON, naming the field or the limit.

- `exception_handler` (REST_FRAMEWORK["EXCEPTION_HANDLER"]): DRF's, plus Django's own request
  errors (a body over DATA_UPLOAD_MAX_MEMORY_SIZE → 413, too many fields → 400) and throttles that
  name their limit.
- `JsonErrorsMiddleware`: what DRF never sees (an unknown path, a malformed id, a server error, a
  middleware's refusal) answers `{"detail": ...}` under /api/ instead of an HTML page.
- Parsers that refuse, with a 400 before any view runs, JSON nested deeper than JSON_MAX_DEPTH
  (checked before `json.loads` recurses), and any text holding a NUL character or a lone
  surrogate, or a number out of range (`1e400`), naming the field: MySQL cannot store the first
  two and SQLite stores what the JSON renderer then cannot answer.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.http.response import HttpResponseBase
from rest_framework import exceptions, parsers, renderers, status

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# No request of this API nests deeper than 4 levels; 32 leaves room and stays far below the
# ~1,000 frames where the JSON decoder (and everything that walks the result) runs out of stack.
JSON_MAX_DEPTH = 32

DETAILS = {
    400: "Bad request.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    406: "Not acceptable.",
    408: "The request took too long to arrive.",
    413: "The request body is too large.",
    414: "The request URL is too long.",
    415: "Unsupported media type.",
    429: "Too many requests.",
    431: "The request headers are too large.",
    500: "Server error: the request could not be completed (it is in the server's log).",
    502: "Bad gateway.",
    503: "The service is unavailable; try again shortly.",
}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


# The DRF exception handler


class RequestTimeout(exceptions.APIException):
    status_code = status.HTTP_408_REQUEST_TIMEOUT
    default_detail = DETAILS[408]
    default_code = "request_timeout"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = DETAILS[413]
    default_code = "payload_too_large"


def body_limit_detail() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return (
        f"The request body is larger than the limit of {limit:,} bytes "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE)."
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponseBase | None:
    """DRF's handler, with Django's request errors and throttles answered as JSON too."""
    # Imported here: rest_framework.views reads the renderer setting, which names this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(body_limit_detail())
    elif isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        exc = exceptions.ParseError(
            f"The request has more than {limit:,} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
        )
    elif isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        exc = exceptions.ParseError(
            f"The request has more than {limit:,} files (DATA_UPLOAD_MAX_NUMBER_FILES)."
        )
    elif isinstance(exc, UnreadablePostError):  # the client stopped sending its body
        exc = RequestTimeout()
    elif isinstance(exc, SuspiciousOperation):
        logger.warning("suspicious request refused: %s", exc)
        exc = exceptions.ParseError("The request was refused as malformed.")
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        # Every 429 says how long to wait, in the header and the body alike.
        wait = max(1, math.ceil(getattr(exc, "wait", None) or 1))
        response["Retry-After"] = str(wait)
        detail = str(getattr(exc, "detail", "")) or DETAILS[429]
        if isinstance(exc, exceptions.Throttled):
            described = getattr(context.get("view"), "throttle_failure", None) or DETAILS[429]
            detail = f"{described} Try again in {wait} seconds."
        response.data = {"detail": detail, "retry_after": wait}
    return response


# What DRF never sees


class JsonErrorsMiddleware:
    """Under /api/, an error answered as HTML (Django's 404 and 500 pages, a middleware's
    refusal) becomes `{"detail": ...}` with the same status and headers. First in MIDDLEWARE, so
    it sees every other middleware's answers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if is_api(request) and needs_json(response):
            return as_json(response)
        return response


def needs_json(response: HttpResponseBase) -> bool:
    if response.status_code < 400 or response.status_code == 416:  # 416: Content-Range only
        return False
    content_type = response.get("Content-Type", "")
    return not content_type.startswith("application/json")


def as_json(response: HttpResponseBase) -> JsonResponse:
    code = response.status_code
    answer = JsonResponse({"detail": DETAILS.get(code, response.reason_phrase)}, status=code)
    for header, value in response.items():
        if header.lower() not in ("content-type", "content-length"):
            answer[header] = value
    for cookie in response.cookies.values():  # e.g. the CSRF cookie
        answer.cookies[cookie.key] = cookie
    return answer


# Parsers


class BadValue(Exception):
    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem


FORBIDDEN_CHARACTER = re.compile("[\x00\ud800-\udfff]")
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
INNERMOST_PAIR = re.compile(r"\[\]|\{\}")


def check_depth(text: str, limit: int = JSON_MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` without recursing: strip the strings, keep the
    brackets, and remove innermost pairs once per level; what is left after `limit` rounds is
    deeper than that (or does not balance, which no parser would accept either)."""
    if text.count("[") + text.count("{") <= limit:
        return
    brackets = NOT_A_BRACKET.sub("", STRING.sub("", text))
    for _ in range(limit):
        brackets, removed = INNERMOST_PAIR.subn("", brackets)
        if not brackets:
            return
        if not removed:
            break
    raise exceptions.ParseError(
        f"JSON parse error - the body is nested deeper than {limit} levels (the limit) "
        "or its brackets do not match."
    )


def text_problem(text: str) -> str | None:
    found = FORBIDDEN_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "Text may not contain NUL characters."
    return "Text may not contain lone surrogates (invalid Unicode characters)."


def walk(value: Any, path: str) -> Iterator[BadValue]:
    """Every NUL, lone surrogate and non-finite number in parsed JSON (depth already bounded)."""
    if isinstance(value, str):
        if problem := text_problem(value):
            yield BadValue(path, problem)
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield BadValue(path, "A number is out of range.")
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if problem := text_problem(str(key)):
                yield BadValue(path or "non_field_errors", f"A key: {problem}")
                continue
            yield from walk(item, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]" if path else "non_field_errors")


def check_values(data: Any) -> None:
    """A 400 naming each field that holds a NUL, a lone surrogate or a number out of range."""
    errors: dict[str, list[str]] = {}
    for bad in walk(data, ""):
        field = re.split(r"[.\[]", bad.path, maxsplit=1)[0] or "non_field_errors"
        message = bad.problem if bad.path == field else f"{bad.path}: {bad.problem}"
        errors.setdefault(field, [])
        if message not in errors[field] and len(errors[field]) < 5:
            errors[field].append(message)
    if errors:
        raise exceptions.ValidationError(errors)


class StrictJSONParser(parsers.JSONParser):
    """JSON with a depth limit, and no NUL, lone surrogate or out-of-range number anywhere."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise exceptions.ParseError(f"JSON parse error - the body is not {encoding}.") from None
        check_depth(text)
        try:
            data = json.loads(text, parse_constant=refuse_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {short(exc)}") from None
        except RecursionError:  # check_depth makes this unreachable; never a 500 all the same
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        check_values(data)
        return data


def refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def short(exc: ValueError) -> str:
    text = str(exc)
    if "integer string conversion" in text:
        return "a number has too many digits."
    return text[:200]


def check_form(data, files) -> None:
    values: dict[str, Any] = {key: data.getlist(key) for key in data}
    for key in files:
        values.setdefault(key, []).extend(upload.name or "" for upload in files.getlist(key))
    check_values({key: items[0] if len(items) == 1 else items for key, items in values.items()})


def check_length(parser_context) -> None:
    """Multipart files bypass DATA_UPLOAD_MAX_MEMORY_SIZE in Django: bound the whole body too."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = (parser_context or {}).get("request")
    if limit is None or request is None:
        return
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLarge(body_limit_detail())


class StrictFormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        check_form(data, {})
        return data


class StrictMultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        check_length(parser_context)
        result = super().parse(stream, media_type, parser_context)
        check_form(result.data, result.files)
        return result


STRICT_PARSERS = (StrictJSONParser, StrictFormParser, StrictMultiPartParser)


# Renderer


class SafeJSONRenderer(renderers.JSONRenderer):
    """UTF-8 JSON, as DRF's; text that UTF-8 cannot carry (a lone surrogate stored before the
    parsers refused them, which SQLite keeps) goes out \\u-escaped instead of failing the answer."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)


class AsciiJSONRenderer(renderers.JSONRenderer):
    ensure_ascii = True
