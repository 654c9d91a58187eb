"""Where a webhook may go: http(s) hosts whose every address is public.

Private, loopback, link-local, shared (CGNAT), reserved, multicast and unspecified addresses are
refused unless WEBHOOK_ALLOW_PRIVATE is on (tests, or a receiver on the same network on purpose).
Host names are resolved, not only literal addresses read: `localhost` and a public name pointing
at 10.0.0.5 are refused alike. Checked on create (a 400 naming `callback_url`) and again before
every POST, since DNS may change in between; redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework.exceptions import ValidationError

RESOLVE_TIMEOUT = 5.0  # seconds: a name server that does not answer must not hold a request
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


class Unresolvable(Exception):
    """The host has no address now (perhaps only for now)."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def addresses_of(host: str, port: int) -> list[str]:
    """Every address `host` resolves to; raises Unresolvable."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        found = future.result(timeout=RESOLVE_TIMEOUT)
    except FutureTimeout:
        raise Unresolvable(f"{host} did not resolve within {RESOLVE_TIMEOUT:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{host} does not resolve ({exc})") from None
    return sorted({str(info[4][0]) for info in found})


def refusal(url: str) -> str:
    """Why `url` may not be called ("" when it may); raises Unresolvable."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Use an http:// or https:// URL with a host."
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    private = [a for a in addresses_of(parts.hostname, port) if not is_public(a)]
    if private:
        return (
            f"The host resolves to a private, loopback or link-local address ({private[0]}); "
            "webhooks go to public addresses only (WEBHOOK_ALLOW_PRIVATE)."
        )
    return ""


def check_callback_url(url: str) -> None:
    """The create check (runs.api.callback_url_checks): a ValidationError for `callback_url`."""
    try:
        reason = refusal(url)
    except Unresolvable as exc:
        reason = f"The host cannot be resolved: {exc}."
    except ValueError:  # a port out of range, a bracketed host that is not an address
        reason = "Use an http:// or https:// URL with a valid host and port."
    if reason:
        raise ValidationError(reason)
