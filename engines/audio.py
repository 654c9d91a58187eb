"""Joining spoken lines and encoding the podcast MP3, streamed through ffmpeg."""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

from engines.errors import EngineError
from engines.media import run_ffmpeg
from engines.speech import wav_duration

# Podcast loudness: -16 LUFS integrated, -1.5 dBTP peak (Apple/Spotify guidance for spoken word).
LOUDNORM = "loudnorm=I=-16:TP=-1.5:LRA=11"
MP3_SAMPLE_RATE = 44100  # loudnorm resamples to 192 kHz internally; bring it back to CD rate
MP3_BITRATE = "128k"


def join_lines(
    wavs: list[Path], *, gap_seconds: float, out_path: Path
) -> list[tuple[float, float]]:
    """Concatenate WAVs with silence between them into one WAV; return (start, end) per line."""
    if not wavs:
        raise EngineError("no audio lines to join")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="join-") as tmp:
        work = Path(tmp)
        rate, channels = _wav_format(wavs[0])
        # The concat demuxer copies PCM as is, so every piece must share one format.
        pieces = [_matching(Path(w), rate, channels, work / f"{i}.wav") for i, w in enumerate(wavs)]
        silence = _write_silence(work / "gap.wav", gap_seconds, rate, channels)
        spans = _timeline(pieces, gap_seconds if silence else 0.0)
        listing = work / "list.txt"
        listing.write_text(_concat_list(pieces, silence), encoding="utf-8")
        run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out_path)])
    return spans


def encode_mp3(
    wav: Path, out_path: Path, *, title: str, artist: str, normalise: bool = True
) -> None:
    """Encode a WAV as MP3 with ID3v2 title/artist tags, loudness-normalised unless told not to."""
    filters = [LOUDNORM] if normalise else []
    filters.append(f"aresample={MP3_SAMPLE_RATE}")
    run_ffmpeg([
        "-i", str(wav), "-af", ",".join(filters),
        "-c:a", "libmp3lame", "-b:a", MP3_BITRATE,
        # ID3v2.3 is what most players (and Apple Podcasts) read reliably.
        "-id3v2_version", "3", "-metadata", f"title={title}", "-metadata", f"artist={artist}",
        str(out_path),
    ])  # fmt: skip


def _wav_format(path: Path) -> tuple[int, int]:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getframerate(), wav.getnchannels()
    except (wave.Error, EOFError, OSError) as exc:
        raise EngineError(f"not a readable WAV file: {path}: {exc}") from exc


def _matching(path: Path, rate: int, channels: int, converted: Path) -> Path:
    """The WAV itself when it has the shared format, else a 16-bit copy converted by ffmpeg."""
    if _wav_format(path) == (rate, channels) and _sample_width(path) == 2:
        return path
    run_ffmpeg(
        [
            "-i",
            str(path),
            "-ar",
            str(rate),
            "-ac",
            str(channels),
            "-c:a",
            "pcm_s16le",
            str(converted),
        ]
    )
    return converted


def _sample_width(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return wav.getsampwidth()


def _write_silence(path: Path, seconds: float, rate: int, channels: int) -> Path | None:
    frames = round(max(0.0, seconds) * rate)
    if frames == 0:
        return None
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0" * (frames * 2 * channels))
    return path


def _timeline(pieces: list[Path], gap_seconds: float) -> list[tuple[float, float]]:
    spans, cursor = [], 0.0
    for index, piece in enumerate(pieces):
        if index:
            cursor += gap_seconds
        start, cursor = cursor, cursor + wav_duration(piece)
        spans.append((round(start, 3), round(cursor, 3)))
    return spans


def _concat_list(pieces: list[Path], silence: Path | None) -> str:
    entries: list[Path] = []
    for index, piece in enumerate(pieces):
        if index and silence:
            entries.append(silence)
        entries.append(piece)
    # The concat format quotes paths in single quotes; escape any quote inside a path.
    return "".join("file '{}'\n".format(str(p.resolve()).replace("'", "'\\''")) for p in entries)
