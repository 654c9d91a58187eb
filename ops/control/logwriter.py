"""The hidden `_log` verb: copy stdin to a size-rotated file until the service closes it.

Standard library only: it runs before (and without) Django.
"""

from __future__ import annotations

import logging
import signal
import sys
from logging.handlers import RotatingFileHandler

LOG_MAX_BYTES = 10 * 1024 * 1024  # per file; the writer keeps LOG_BACKUPS older ones beside it
LOG_BACKUPS = 5


def write_log(path: str) -> None:
    handler = RotatingFileHandler(
        path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.terminator = ""  # each line keeps its own newline
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        handler.emit(logging.makeLogRecord({"msg": line.decode("utf-8", "replace")}))
    handler.close()
