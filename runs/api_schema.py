"""The OpenAPI schema tells the truth about errors: one shared `Error` component, and on every
operation the 4xx answers it can give (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]). Also the
Swagger UI view, which answers OPTIONS instead of failing to render it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from drf_spectacular.views import SpectacularSwaggerView

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "An error. `detail` says what went wrong for the request as a whole (a missing login, a "
        "limit: `retry_after` then gives the seconds to wait, as the Retry-After header does); "
        "a refused input has one key per field instead, each with a list of messages (nested "
        "objects for nested fields)."
    ),
    "properties": {
        "detail": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": True,
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
DESCRIPTIONS = {
    "400": "Bad input: one key per field, or `detail` (malformed or too deeply nested JSON).",
    "401": "No valid credentials (`Authorization: Token <key>` or a session).",
    "403": "Signed in, but not allowed to do this.",
    "404": "No such object for this user (others' objects answer 404 too).",
    "413": "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    "415": "The body is not JSON, a form or a multipart upload.",
    "422": "The Idempotency-Key was used with another body.",
    "429": "A limit was reached (`detail` names it); see Retry-After.",
}
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def error_response(code: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if code == "429":
        answer["headers"] = RETRY_AFTER
    return answer


def throttled(callback, method: str) -> bool:
    """Whether the view behind an operation may answer 429: its `throttled_actions`."""
    view = getattr(callback, "cls", None)
    names = getattr(view, "throttled_actions", ())
    actions = getattr(callback, "actions", None) or {}
    return actions.get(method, method) in names


def add_error_responses(result: dict[str, Any], generator, **kwargs) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    callbacks = {(path, method.lower()): cb for path, _, method, cb in generator.endpoints or ()}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            codes = set()
            if operation.get("requestBody") or operation.get("parameters"):
                codes.add("400")
            if any(requirement for requirement in operation.get("security", [])):
                codes |= {"401", "403"}
            if "{" in path:
                codes.add("404")
            if operation.get("requestBody"):
                codes |= {"413", "415"}
            if throttled(callbacks.get((path, method)), method):
                codes.add("429")
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(code, error_response(code))
            for code, answer in responses.items():  # e.g. 409 and 422 declared by the views
                if code.startswith("4") and code != "416" and "content" not in answer:
                    answer["content"] = {"application/json": {"schema": ERROR_REF}}
    return result


class DocsView(SpectacularSwaggerView):
    """Swagger UI; OPTIONS answers which methods there are (DRF's metadata cannot be rendered
    as the UI's HTML template)."""

    def options(self, request: HttpRequest, *args, **kwargs):
        response = JsonResponse(
            {"name": "API docs", "description": "Swagger UI for this API: GET it in a browser."}
        )
        response["Allow"] = "GET, HEAD, OPTIONS"
        return response
