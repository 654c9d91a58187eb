"""Helpers for the lean submit's tests: which path answered, and both paths' answers compared."""

from __future__ import annotations

import json

from runs import submit as lean

HEADERS_COMPARED = ("Content-Type", "Allow", "Vary", "WWW-Authenticate", "Retry-After")


def spy_on_paths(monkeypatch) -> list[str]:
    """Which path answered each POST from now on: "lean", or "handed over" to DRF."""
    taken: list[str] = []
    real = lean.submit

    def spy(*args, **kwargs):
        try:
            response = real(*args, **kwargs)
        except lean.HandOver:
            taken.append("handed over")
            raise
        taken.append("lean")
        return response

    monkeypatch.setattr(lean, "submit", spy)
    return taken


def drf_only(monkeypatch, viewset) -> None:
    monkeypatch.setattr(viewset, "lean_reader", classmethod(lambda cls: None))


def post(client, url: str, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data, content_type="application/json", **extra)


def answer(reply, url: str) -> dict:
    """What a client sees, with the new run's id (different on each path) left out."""
    body = reply.json()
    if reply.status_code == 202:
        assert body["url"] == reply["Location"] and f"{url}{body['id']}/" in body["url"]
        body = {**body, "id": "<id>", "url": "<url>"}
    headers = {name: reply.get(name) for name in HEADERS_COMPARED}
    if reply.status_code == 202:
        headers["Location"] = "<url>" if reply.get("Location") else None
    return {"status": reply.status_code, "body": body, "headers": headers}


def both_ways(monkeypatch, viewset, client, url: str, body, **extra) -> tuple[dict, dict]:
    """The answer of the lean path (as the view is), then of the DRF path alone."""
    lean_answer = answer(post(client, url, body, **extra), url)
    with monkeypatch.context() as patch:
        drf_only(patch, viewset)
        drf_answer = answer(post(client, url, body, **extra), url)
    return lean_answer, drf_answer


def stored_row(run) -> dict:
    """A run's row as a submit wrote it, less what differs by nature between two submits."""
    return {
        f.attname: getattr(run, f.attname)
        for f in type(run)._meta.concrete_fields
        if f.attname not in ("id", "task_id", "created_at", "queued_at")
    }
