"""Flower on the project's terms: basic auth required and never empty, and Flower's /metrics and
/healthcheck behind the same login (Flower itself serves both to anyone).

`run_celery.py monitor` and deploy/systemd/mediaruns-flower.service start Flower with
`--conf=deploy/flowerconfig.py`, a file Flower executes before it serves; it calls
`secure_flower()`. `run_celery.py monitor` checks the credentials itself first, so its refusal
comes before anything starts. Read-only is Flower's own `--read_only` option (every operation
answers 403: revoke, terminate, rate limits, pool and consumer changes, task submission).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

NO_CREDENTIALS = (
    "Set FLOWER_BASIC_AUTH=user:password first: Flower shows task arguments and can revoke tasks."
)


def basic_auth_problem(credentials: str | Sequence[str]) -> str | None:
    """What is wrong with FLOWER_BASIC_AUTH (`user:password`, several separated by commas, as
    Flower splits it), as one sentence that never repeats a password; None when it is usable."""
    entries = credentials.split(",") if isinstance(credentials, str) else list(credentials)
    if not any(entry.strip() for entry in entries):
        return NO_CREDENTIALS
    for number, entry in enumerate(entries, start=1):
        user, colon, password = entry.partition(":")
        if not colon:
            flaw = "no colon between the user name and the password"
        elif not user.strip():
            flaw = "an empty user name"
        elif not password.strip():
            flaw = "an empty password"
        else:
            continue
        which = "it" if len(entries) == 1 else f"entry {number}"
        return (
            "FLOWER_BASIC_AUTH must be user:password (several separated by commas) with neither "
            f"part empty, but {which} has {flaw}."
        )
    return None


def require_login(*handlers: type) -> None:
    """Put the GET of these Flower handlers behind Flower's own login check (`current_user`:
    with basic auth, a request without the right credentials answers 401)."""
    from tornado.web import authenticated

    for handler in handlers:
        get = handler.get  # type: ignore[attr-defined]
        if not getattr(get, "login_required", False):
            guarded = authenticated(get)
            guarded.login_required = True  # type: ignore[attr-defined]
            handler.get = guarded  # type: ignore[attr-defined]


def secure_flower() -> None:
    """Called by deploy/flowerconfig.py inside Flower, once its options are parsed (from
    FLOWER_* variables and the command line): refuse to start without usable credentials
    (one sentence, exit 2), then guard /metrics and /healthcheck."""
    from flower.views.monitor import Healthcheck, Metrics
    from tornado.options import options

    if not options.auth:  # Flower's OAuth login instead of basic auth: its own rules apply
        problem = basic_auth_problem(options.basic_auth or [])
        if problem:
            print(problem, file=sys.stderr, flush=True)
            raise SystemExit(2)
    require_login(Metrics, Healthcheck)
