"""What every verb may answer: an exit code, or a sentence for the operator."""

from __future__ import annotations

HEALTHY, DEGRADED, DOWN = 0, 1, 2


class OpsError(Exception):
    """A problem the operator can act on: printed as one sentence, never as a traceback."""

    def __init__(self, sentence: str, code: int = 1):
        super().__init__(sentence)
        self.code = code
