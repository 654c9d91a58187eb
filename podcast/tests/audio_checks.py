"""Look inside an episode's audio: decode it and estimate the speaking pitch of a stretch."""

from __future__ import annotations

import statistics
from array import array
from pathlib import Path

import av

RATE = 8000  # plenty for voice pitch (80-400 Hz), and cheap to analyse in pure Python
FRAME = 400  # 50 ms analysis frames
LAGS = range(RATE // 400, RATE // 70)  # periods of 400 Hz down to 70 Hz


def decode_mono(path: Path) -> array:
    """All samples of the file as 16-bit mono at RATE."""
    samples = array("h")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
    for out in resampler.resample(None):  # flush
        samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
    return samples


def pitch_hz(samples: array, start_seconds: float, end_seconds: float, frames: int = 12) -> float:
    """Median fundamental frequency of the loudest frames in a stretch, by autocorrelation."""
    stretch = samples[int(start_seconds * RATE) : int(end_seconds * RATE)]
    chunks = [stretch[i : i + FRAME] for i in range(0, len(stretch) - FRAME, FRAME)]
    loudest = sorted(chunks, key=lambda c: -sum(abs(s) for s in c))[:frames]
    estimates = [RATE / _best_lag(chunk) for chunk in loudest]
    return statistics.median(estimates)


def _best_lag(chunk: array) -> int:
    def correlation(lag: int) -> float:
        return sum(a * b for a, b in zip(chunk, chunk[lag:], strict=False)) / (len(chunk) - lag)

    return max(LAGS, key=correlation)
