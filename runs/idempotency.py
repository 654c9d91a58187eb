"""The `Idempotency-Key` of a submit and the fingerprint of its body, shared by the DRF create
(runs/api.py) and the lean submit (runs/submit.py): a replay with the same key answers with the
run the key made, and one with another body is refused (422)."""

from __future__ import annotations

import hashlib
import json

IDEMPOTENCY_HEADER = "Idempotency-Key"


def fingerprint(data) -> str:
    body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()
