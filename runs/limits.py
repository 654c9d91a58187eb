"""Abuse limits, counted in Django's cache (Redis: shared by every web process).

- Throttles: submits per user (`THROTTLE_SUBMIT_RATE`, POST /api/podcasts/ and /api/videos/) and
  token requests per client address (`THROTTLE_TOKEN_RATE`), as fixed windows counted with
  atomic increments, answering 429 with `Retry-After`.
- A cap on a user's active runs (pending, queued, running, waiting) across every run kind:
  `RUN_ACTIVE_LIMIT_PER_USER`; staff are exempt.
- Login lockout: after `LOGIN_FAILURE_LIMIT` failed logins for one username from one client
  address, or `LOGIN_FAILURE_LIMIT_PER_ADDRESS` for any usernames from one address, the admin
  login and the token endpoint answer 429 for `LOGIN_COOLOFF_SECONDS` without checking the
  password. Failures are counted from Django's `user_login_failed` signal, so both doors count
  towards one lock.

A cache that does not answer (Redis down) lets requests through with a warning in the log: the
limits protect the service, they must not take it down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from functools import cache as memoize
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from rest_framework import exceptions, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import BaseThrottle

from .api_errors import STRICT_PARSERS
from .models import ACTIVE, ActiveRunLock, run_models

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"^\s*(\d+)\s*/\s*([smhd])[a-z]*\s*$")
ACTIVE_RUN_RETRY_AFTER = 30  # seconds; runs take minutes, so there is no exact time to give


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """`20/minute` → (20, 60); `off`, empty or None → None (no limit)."""
    if not rate or rate.strip().lower() in ("off", "none"):
        return None
    match = RATE.match(rate.lower())
    if match is None:
        raise ValueError(f"not a rate: {rate!r}")
    return int(match.group(1)), PERIODS[match.group(2)]


def client_address(request) -> str:
    """The client's address, trusting NUM_PROXIES proxies' X-Forwarded-For (DRF's rule)."""
    return BaseThrottle().get_ident(request) or "unknown"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TooManyRequests(exceptions.APIException):
    """429 with `Retry-After` (DRF's handler sends `wait` as that header)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_requests"

    def __init__(self, detail: str, wait: float):
        self.wait = max(1, math.ceil(wait))
        super().__init__(detail)


# Throttles

# A request counted once by the lean submit (runs/submit.py) carries its verdict here, so the DRF
# path it may hand over to answers with it instead of counting the request a second time.
VERDICT_ATTRIBUTE = "submit_throttle_verdict"


@dataclass(frozen=True)
class Verdict:
    """A throttle's answer to one request: allowed, or refused for so long with this reason."""

    allowed: bool
    wait_seconds: float | None = None
    failure: str = ""


class WindowThrottle(BaseThrottle):
    """At most N requests per period and identity, in a fixed window counted atomically."""

    scope = ""
    setting = ""  # the settings name of the rate, read on each request (tests change it)
    what = "requests"
    per = "user"

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def applies(self, request, view) -> bool:
        return True

    def identity(self, request) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user_identity(user.pk)
        return f"address-{digest(client_address(request))}"

    def allow_request(self, request, view) -> bool:
        if not self.applies(request, view):
            return True
        verdict = getattr(request, VERDICT_ATTRIBUTE, None)
        if verdict is None:  # not counted yet (the lean submit counts before it hands over)
            verdict = self.count(self.identity(request))
        if verdict is None or verdict.allowed:
            return True
        self.wait_seconds = verdict.wait_seconds
        view.throttle_failure = verdict.failure
        return False

    def count(self, identity: str) -> Verdict | None:
        """Count one request of `identity` in the current window; None when the rate is off."""
        raw = getattr(settings, self.setting, None)
        rate = parse_rate(raw)
        if rate is None:
            return None
        allowed, period = rate
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{identity}:{window}"
        try:
            cache.add(key, 0, timeout=period + 1)
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=period + 1)
                count = 1
        except Exception:
            logger.warning("throttle %s: the cache did not answer; request let through", self.scope)
            return Verdict(allowed=True)
        if count <= allowed:
            return Verdict(allowed=True)
        return Verdict(
            allowed=False,
            wait_seconds=(window + 1) * period - now,
            failure=f"Too many {self.what}: the limit is {raw} per {self.per} ({self.setting}).",
        )

    def wait(self) -> float | None:
        return self.wait_seconds


def user_identity(pk) -> str:
    return f"user-{pk}"


class SubmitThrottle(WindowThrottle):
    """Run submissions (the viewset's `create`) per user."""

    scope = "submit"
    setting = "THROTTLE_SUBMIT_RATE"
    what = "submissions"

    def applies(self, request, view) -> bool:
        return getattr(view, "action", None) == "create"


class TokenThrottle(WindowThrottle):
    """Token requests per client address (the endpoint is anonymous)."""

    scope = "token"
    setting = "THROTTLE_TOKEN_RATE"
    what = "token requests"
    per = "client address"

    def identity(self, request) -> str:
        return f"address-{digest(client_address(request))}"


# The cap on active runs


class ActiveRunLimit(TooManyRequests):
    default_code = "active_run_limit"


def check_active_runs(user, *, written: int = 0) -> None:
    """Refuse a new run while the user has RUN_ACTIVE_LIMIT_PER_USER active ones (staff: no cap).

    `user` needs only `pk` and `is_staff`. Call inside the transaction that creates the run, as
    late as it can be: the count is read with the user's cap lock taken (`ActiveRunLock`, held
    until the commit), so the submits of one user are counted one after the other, and every
    other submit of the user waits while this one holds it. `written`: the active runs this
    transaction has inserted already (its own uncommitted rows are in its count, nobody else's).
    """
    limit = settings.RUN_ACTIVE_LIMIT_PER_USER
    if not limit or user.is_staff:
        return
    active = count_active_runs(user, up_to=limit + written, lock=True) - written
    if active >= limit:
        raise ActiveRunLimit(
            f"You have {active} active runs; the limit is {limit} per user "
            "(RUN_ACTIVE_LIMIT_PER_USER). Wait for one to finish or cancel one.",
            wait=ACTIVE_RUN_RETRY_AFTER,
        )


def count_active_runs(user, *, up_to: int, lock: bool = False) -> int:
    """The user's active runs of every kind, counted up to `up_to` per kind (bounded work
    whatever the user holds), in one statement written once per process (the ORM would compile
    two queries and their UNION on every submit). With `lock`, the same statement locks the
    user's `ActiveRunLock` row first (made at the user's first submit): one round trip less
    while holding it is one less wait for every other submit of the user."""
    locking = lock and connection.features.has_select_for_update
    sql = active_count_sql(tuple(run_models()), int(up_to), locking)
    params = [value for _ in run_models() for value in (user.pk, *ACTIVE_STATUSES)]
    if locking:
        params.append(user.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:  # the user's first capped submit: make the row, locked, and count
            cursor.execute(lock_row_sql(), [user.pk])
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return int(row[0])


ACTIVE_STATUSES = sorted(ACTIVE)


@memoize
def active_count_sql(kinds: tuple, up_to: int, lock: bool) -> str:
    """`SELECT (SELECT COUNT(*) FROM (… LIMIT n)) + … [FROM lock WHERE user = %s FOR UPDATE]`:
    one bounded count per run kind, in SQL that MariaDB, MySQL and SQLite all read (SQLite
    refuses LIMIT inside UNION's parts). Locking, the counts are the select list of the lock's
    row, so they are read once that row is locked: after the submit that held it has committed
    (runs/tests/test_limits.py holds one open to prove it). They are plain reads: under READ
    COMMITTED they see every run committed before, and a locking read of the runs would wait on
    the uncommitted runs of the submits queued behind this one, which wait on this one."""
    quote = connection.ops.quote_name
    statuses = ", ".join(["%s"] * len(ACTIVE_STATUSES))
    counts = []
    for number, model in enumerate(kinds):
        owner = quote(model._meta.get_field("owner").column)
        status = quote(model._meta.get_field("status").column)
        rows = (
            f"SELECT 1 FROM {quote(model._meta.db_table)} "
            f"WHERE {owner} = %s AND {status} IN ({statuses}) LIMIT {up_to}"
        )
        counts.append(f"(SELECT COUNT(*) FROM ({rows}) active_{number})")
    total = f"SELECT {' + '.join(counts) or '0'}"
    if not lock:
        return total
    locks = ActiveRunLock._meta
    return f"{total} FROM {quote(locks.db_table)} WHERE {quote(lock_column())} = %s FOR UPDATE"


def lock_column() -> str:
    return cast(str, ActiveRunLock._meta.pk.column)


@memoize
def lock_row_sql() -> str:
    """Make a user's lock row, locked, or lock the one a concurrent first submit just made.
    Not INSERT IGNORE nor a caught duplicate: those leave a shared lock on the existing row,
    and two submits each holding one and asking for the exclusive lock deadlock."""
    quote = connection.ops.quote_name
    table, column = quote(ActiveRunLock._meta.db_table), quote(lock_column())
    insert = f"INSERT INTO {table} ({column}) VALUES (%s)"
    if connection.vendor == "mysql":
        return f"{insert} ON DUPLICATE KEY UPDATE {column} = {column}"
    return f"{insert} ON CONFLICT DO NOTHING"


# Login lockout


class LoginLockout:
    """Failed logins per (username, address) and per address, in the cache."""

    @staticmethod
    def keys(username: str, address: str) -> list[tuple[str, str]]:
        """(lock key, counter key) pairs with the setting that bounds each."""
        user = digest(f"{username.strip().casefold()}|{address}")
        place = digest(address)
        return [
            (f"login:user:{user}", "LOGIN_FAILURE_LIMIT"),
            (f"login:address:{place}", "LOGIN_FAILURE_LIMIT_PER_ADDRESS"),
        ]

    def wait(self, username: str, address: str) -> float:
        """Seconds until this username may try again from this address (0: now)."""
        try:
            ends = cache.get_many([f"{key}:locked" for key, _ in self.keys(username, address)])
        except Exception:
            logger.warning("login lockout: the cache did not answer; login let through")
            return 0
        return max((float(until) - time.time() for until in ends.values()), default=0)

    def failed(self, username: str, address: str) -> None:
        cooloff = settings.LOGIN_COOLOFF_SECONDS
        try:
            for key, setting in self.keys(username, address):
                limit = getattr(settings, setting)
                if not limit:
                    continue
                cache.add(key, 0, timeout=cooloff)
                try:
                    count = cache.incr(key)
                except ValueError:
                    cache.set(key, 1, timeout=cooloff)
                    count = 1
                if count >= limit:
                    cache.set(f"{key}:locked", time.time() + cooloff, timeout=cooloff)
                    cache.delete(key)
                    logger.warning("login lockout (%s) for %s seconds", setting, cooloff)
        except Exception:
            logger.warning("login lockout: the cache did not answer; failure not counted")

    def succeeded(self, username: str, address: str) -> None:
        key = self.keys(username, address)[0][0]
        try:
            cache.delete(key)
        except Exception:
            logger.warning("login lockout: the cache did not answer")


lockout = LoginLockout()


def lockout_detail(wait: float) -> str:
    seconds = max(1, math.ceil(wait))
    return (
        f"Too many failed logins (LOGIN_FAILURE_LIMIT); try again in {seconds} seconds "
        "(LOGIN_COOLOFF_SECONDS)."
    )


@receiver(user_login_failed, dispatch_uid="runs.limits.count_failed_login")
def count_failed_login(sender, credentials: dict[str, Any], request=None, **kwargs) -> None:
    if request is None:
        return
    username = credentials.get("username")
    if isinstance(username, str):
        lockout.failed(username, client_address(request))


@receiver(user_logged_in, dispatch_uid="runs.limits.forget_failed_logins")
def forget_failed_logins(sender, request=None, user=None, **kwargs) -> None:
    if request is not None and user is not None:
        lockout.succeeded(user.get_username(), client_address(request))


class AdminLoginLockoutMiddleware:
    """The admin login answers 429 (with `Retry-After`) while the username or address is locked
    out, before the password is checked."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name != "admin:login":
            return None
        username = request.POST.get("username", "")
        wait = lockout.wait(username, client_address(request))
        if wait <= 0:
            return None
        detail = lockout_detail(wait)
        response = HttpResponse(
            f"<!doctype html><title>Too many failed logins</title><p>{escape(detail)}</p>",
            status=429,
        )
        response["Retry-After"] = str(max(1, math.ceil(wait)))
        return response


class TokenView(ObtainAuthToken):
    """POST /api/auth/token/: a token for a username and password; throttled per client address
    and locked out like the admin login; strict parsers (depth, NUL, surrogates)."""

    authentication_classes = ()
    parser_classes = STRICT_PARSERS
    throttle_classes = (TokenThrottle,)
    throttled_actions = ("post",)

    def post(self, request, *args, **kwargs):
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        address = client_address(request)
        if isinstance(username, str) and (wait := lockout.wait(username, address)) > 0:
            raise TooManyRequests(lockout_detail(wait), wait=wait)
        response = super().post(request, *args, **kwargs)
        if isinstance(username, str):
            lockout.succeeded(username, address)
        return response
