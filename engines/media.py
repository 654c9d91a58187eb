"""ffmpeg runner and PyAV probe shared by the audio and video engines."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import av
import imageio_ffmpeg

from engines.cancel import CancelToken, token_or_current
from engines.errors import EngineError, TransientEngineError

STDERR_TAIL_LINES = 8


@dataclass
class StreamInfo:
    kind: str  # "audio" or "video"
    codec: str
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    pix_fmt: str | None = None


@dataclass
class MediaInfo:
    duration_seconds: float
    streams: list[StreamInfo] = field(default_factory=list)

    def first(self, kind: str) -> StreamInfo | None:
        """The first stream of a kind, or None."""
        return next((s for s in self.streams if s.kind == kind), None)


@cache
def ffmpeg_exe() -> str:
    """Path of the static ffmpeg that imageio-ffmpeg ships (IMAGEIO_FFMPEG_EXE overrides it)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(
    args: list[str], *, timeout: float | None = None, cancel: CancelToken | None = None
) -> None:
    """Run ffmpeg quietly; raise EngineError carrying the last stderr lines on failure.

    The process is registered with the cancel token (`cancel`, else the caller's active one), so
    a cancelled run kills it at once; this then raises `engines.cancel.Cancelled`.
    """
    token = token_or_current(cancel)
    token.check()
    # -nostdin: a worker has no terminal, and ffmpeg would otherwise read keystrokes from it.
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args]
    with (
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process,
        token.watching(process),
    ):
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            # A slow render is usually load, not bad input, so let the caller retry later.
            raise TransientEngineError(f"ffmpeg did not finish within {timeout} s") from exc
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:]
        raise EngineError(f"ffmpeg failed ({process.returncode}): " + " | ".join(tail))


def probe(path: str | Path) -> MediaInfo:
    """Duration and streams of a media file, read with PyAV (the static ffmpeg has no ffprobe)."""
    try:
        with av.open(str(path)) as container:
            streams = [
                _stream_info(s)
                for s in container.streams
                if isinstance(s, av.VideoStream | av.AudioStream)
            ]
            return MediaInfo(_duration_seconds(container), streams)
    except (av.FFmpegError, OSError) as exc:
        raise EngineError(f"cannot read media file {path}: {exc}") from exc


def audio_seconds(path: str | Path) -> float:
    """Seconds of the first audio stream, counted from its decoded samples: a header's (or a
    container's) claimed length is not trusted."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise EngineError(f"{path} has no audio stream")
            samples, rate = 0, 0
            for frame in container.decode(audio=0):
                samples += frame.samples
                rate = frame.sample_rate or rate
    except (av.FFmpegError, OSError) as exc:
        raise EngineError(f"cannot read audio file {path}: {exc}") from exc
    return samples / rate if rate else 0.0


def _stream_info(stream: av.VideoStream | av.AudioStream) -> StreamInfo:
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name  # "mp3", not the decoder's name "mp3float"
    if isinstance(ctx, av.VideoCodecContext):
        return StreamInfo(
            "video", codec, ctx.width, ctx.height, pix_fmt=ctx.format.name if ctx.format else None
        )
    return StreamInfo("audio", codec, sample_rate=ctx.sample_rate)


def _duration_seconds(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    # Some muxers only record per-stream durations.
    spans = [
        float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base
    ]
    return max(spans, default=0.0)
