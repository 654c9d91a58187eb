"""WAV files as servers really send them, and the one way the engines read a WAV's length.

A server that streams its WAV (OpenAI, Kokoro-FastAPI, anything piping ffmpeg) does not know the
length when it writes the header, so it writes 0xFFFFFFFF (or 0) as the RIFF and data sizes.
Python's `wave` believes the header: a one-second line "lasts" 89,478 s. Here the data size is
what the file holds: `layout` clamps the header's claim to the bytes present, and `repair` writes
the true sizes back, so every later reader (the `wave` module, ffmpeg's concat) agrees.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from engines.errors import EngineError

PCM = 1
UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class Layout:
    format_tag: int  # 1 = integer PCM; 3 = float; 0xFFFE = extensible
    channels: int
    rate: int
    width: int  # bytes per sample
    data_offset: int  # where the samples start
    data_bytes: int  # samples present in the file (never more than it holds)
    declared_bytes: int  # what the header claims
    riff_bytes: int  # the RIFF size the header claims
    file_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // max(1, self.channels * self.width)

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0

    @property
    def is_pcm16(self) -> bool:
        return self.format_tag == PCM and self.width == 2

    @property
    def sizes_wrong(self) -> bool:
        data_reaches_end = self.data_offset + self.data_bytes >= self.file_bytes - 1
        return data_reaches_end and (
            self.declared_bytes != self.data_bytes or self.riff_bytes != self.file_bytes - 8
        )


def layout(path: Path) -> Layout | None:
    """The format and the true data size of a RIFF/WAVE file; None for anything else."""
    size = os.path.getsize(path)
    with open(path, "rb") as wav:
        head = wav.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        riff_bytes = struct.unpack("<I", head[4:8])[0]
        fmt: tuple[int, int, int, int] | None = None
        while True:
            chunk = wav.read(8)
            if len(chunk) < 8:
                return None  # no data chunk
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                body = wav.read(max(16, length))
                tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == 0xFFFE and len(body) >= 26:  # extensible: the real tag is in the GUID
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, channels, rate, bits // 8)
                wav.seek(length - len(body) + (length & 1), os.SEEK_CUR)
            elif name == b"data":
                if fmt is None:
                    return None
                offset = wav.tell()
                present = size - offset
                claimed = present if length in UNKNOWN_SIZES else min(length, present)
                return Layout(*fmt, offset, claimed, length, riff_bytes, size)
            else:
                wav.seek(length + (length & 1), os.SEEK_CUR)


def repair(path: Path) -> bool:
    """Write the true RIFF and data sizes into a header that claims others; True if it did."""
    found = layout(path)
    if found is None or not found.sizes_wrong:
        return False
    block = max(1, found.channels * found.width)
    data = found.data_bytes // block * block
    with open(path, "r+b") as wav:
        wav.truncate(found.data_offset + data)  # a torn last frame goes
        wav.seek(4)
        wav.write(struct.pack("<I", found.data_offset + data - 8))
        wav.seek(found.data_offset - 4)
        wav.write(struct.pack("<I", data))
    return True


def duration(path: Path) -> float:
    """Seconds of a PCM WAV, from the samples it holds (a streamed header's sizes are ignored)."""
    try:
        found = layout(Path(path))
    except (OSError, struct.error) as exc:
        raise EngineError(f"not a readable WAV file: {path}: {exc}") from exc
    if found is None or not found.rate:
        raise EngineError(f"not a readable WAV file: {path}")
    return found.seconds
