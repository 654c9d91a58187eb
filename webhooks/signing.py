"""The signature on every delivery, and how a receiver checks it (docs/api.md shows the same).

`X-Signature: t=<unix seconds>,v1=<hex>` where v1 = HMAC-SHA256(secret, f"{t}.{body}"). The
timestamp is inside what is signed, so a receiver that refuses old timestamps (five minutes)
refuses a replayed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, body, t)}"


def verify(secret: str, body: bytes, value: str, *, tolerance: float = TOLERANCE_SECONDS) -> bool:
    """True when `value` (the X-Signature header) signs `body` with `secret`, recently."""
    try:
        parts = dict(item.split("=", 1) for item in value.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, body, t), parts.get("v1", ""))
