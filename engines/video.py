"""Compose still scenes and narration into an MP4 with gentle motion and burned-in subtitles.

Choices, for speed and flat memory on small machines:
- Pillow scales every still once to the frame size plus a pan margin, and one ffmpeg call turns
  them into raw yuv420p (Y4M) files; ffmpeg then reads the stills and the subtitle bands as two
  concat-demuxer slideshows, so memory stays flat however many scenes there are (one input per
  scene cost ~13 MB each). The stills' slideshow names a still once per frame (a Y4M frame is
  read, not decoded or converted): repeating one still with the `fps` filter emitted a scene's
  frames in one burst, and the overlay's writable copies of them (1.4 MB each at 720p) piled up
  to ~350 MB in ffmpeg for a 60 s video; read frame by frame it stays near 190 MB.
- The motion is a slow pan done with `crop`, which only moves a pointer per frame. ffmpeg's
  `zoompan` rescales every frame and jitters unless the input is upscaled several times first.
- Subtitles are drawn with Pillow into transparent bands and overlaid, because the static ffmpeg
  may find no system fonts for libass/drawtext (and Pillow can use a CJK font when one exists).
- x264 `-preset veryfast -crf 23`: near `medium` quality for flat illustrated frames at a third
  of the CPU time. The whole render is one ffmpeg invocation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from engines.errors import EngineError
from engines.images import draw_subtitle_band
from engines.media import probe, run_ffmpeg

PAN_MARGIN = 1.08  # stills are scaled 8% larger than the frame; the pan travels that margin
X264_PRESET = "veryfast"
X264_CRF = "23"
AUDIO_BITRATE = "128k"
AUDIO_RATE = "48000"  # what browsers and phones expect of AAC in MP4
# Pan paths as (x, y) crop expressions of the progress p in [0, 1]; scenes cycle through them.
PANS = (
    ("(iw-ow)*{p}", "(ih-oh)/2"),
    ("(iw-ow)*(1-{p})", "(ih-oh)/2"),
    ("(iw-ow)*{p}", "(ih-oh)*{p}"),
    ("(iw-ow)/2", "(ih-oh)*(1-{p})"),
)


def compose(
    scenes: list[tuple[Path, float]],
    audio: Path,
    out_path: Path,
    *,
    width: int,
    height: int,
    fps: int,
    subtitles: list[str] | None = None,
    font_path: str = "",
) -> None:
    """Render scenes (image, seconds) over the audio as an H.264/AAC MP4 as long as the audio.

    `font_path` is a TrueType font for the subtitles (the built-in ones when empty).
    """
    _check(scenes, width, height, fps, subtitles)
    audio_seconds = probe(audio).duration_seconds
    if audio_seconds <= 0:
        raise EngineError(f"audio {audio} has no duration")
    frames = frame_counts([seconds for _, seconds in scenes], audio_seconds, fps)
    with tempfile.TemporaryDirectory(prefix="compose-") as tmp:
        folder = Path(tmp)
        stills = _scaled_stills([image for image, _ in scenes], width, height, folder)
        inputs = ["-f", "concat", "-safe", "0", "-i", str(_frame_list(stills, frames, fps, folder))]
        if subtitles is not None:
            bands = _subtitle_bands(subtitles, width, folder, font_path)
            inputs += [
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(_slideshow(bands, frames, fps, folder)),
            ]
        run_ffmpeg([
            *inputs, "-i", str(audio),
            "-filter_complex", _filter_graph(frames, width, height, fps, subtitles is not None),
            "-map", "[video]", "-map", f"{2 if subtitles is not None else 1}:a",
            "-frames:v", str(sum(frames)),
            "-c:v", "libx264", "-preset", X264_PRESET, "-crf", X264_CRF, "-r", str(fps),
            "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", AUDIO_RATE,
            "-movflags", "+faststart", str(out_path),
        ])  # fmt: skip


def frame_counts(seconds: list[float], audio_seconds: float, fps: int) -> list[int]:
    """Frames per scene: durations scaled to fill the audio, rounded without drifting."""
    weights = [max(s, 0.0) for s in seconds]
    total = sum(weights) or len(weights)
    weights = weights if sum(weights) else [1.0] * len(weights)
    target = round(audio_seconds * fps)
    counts, done, elapsed = [], 0, 0.0
    for weight in weights:
        elapsed += weight / total * target
        # Rounding the running total (not each scene) keeps the sum exactly on target.
        counts.append(max(1, round(elapsed) - done))
        done += counts[-1]
    return counts


def _check(
    scenes: list[tuple[Path, float]], width: int, height: int, fps: int, subtitles: list[str] | None
) -> None:
    if not scenes:
        raise EngineError("a video needs at least one scene")
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise EngineError(f"width and height must be even and at least 16, not {width}x{height}")
    if not 1 <= fps <= 60:
        raise EngineError(f"fps must be between 1 and 60, not {fps}")
    if subtitles is not None and len(subtitles) != len(scenes):
        raise EngineError(f"{len(subtitles)} subtitles for {len(scenes)} scenes")
    missing = [str(image) for image, _ in scenes if not Path(image).is_file()]
    if missing:
        raise EngineError(f"scene images not found: {', '.join(missing)}")


def _scaled_stills(images: list[Path], width: int, height: int, folder: Path) -> list[Path]:
    """Each distinct image cover-fitted to the pan canvas once, then converted to a yuv420p Y4M."""
    canvas = (_even(width * PAN_MARGIN), _even(height * PAN_MARGIN))
    done: dict[Path, Path] = {}
    for image in images:
        if image not in done:
            done[image] = folder / f"still-{len(done)}.bmp"
            try:
                with Image.open(image) as source:
                    ImageOps.fit(source.convert("RGB"), canvas).save(done[image])
            except OSError as exc:
                raise EngineError(f"cannot read scene image {image}: {exc}") from exc
    converted = {bmp: bmp.with_suffix(".y4m") for bmp in done.values()}
    arguments = [arg for bmp in converted for arg in ("-i", str(bmp))]
    for index, y4m in enumerate(converted.values()):
        arguments += ["-map", f"{index}:v", "-pix_fmt", "yuv420p", str(y4m)]
    run_ffmpeg(arguments)  # one call converts them all
    return [converted[done[image]] for image in images]


def _subtitle_bands(subtitles: list[str], width: int, folder: Path, font_path: str) -> list[Path]:
    paths = []
    for index, text in enumerate(subtitles):
        paths.append(folder / f"subtitle-{index}.png")
        # One fixed band height, so the overlay never has to reconfigure mid-stream.
        draw_subtitle_band(text, width, fixed_lines=3, font_path=font_path).save(paths[-1])
    return paths


def _frame_list(stills: list[Path], frames: list[int], fps: int, folder: Path) -> Path:
    """A concat-demuxer list naming each still once for every frame it is on screen."""
    listing = folder / "frames.txt"
    with listing.open("w", encoding="utf-8") as out:
        for still, count in zip(stills, frames, strict=True):
            out.write(f"file '{_quoted(still)}'\nduration {1 / fps:.6f}\n" * count)
        out.write(f"file '{_quoted(stills[-1])}'\n")  # else the demuxer drops the last duration
    return listing


def _slideshow(images: list[Path], frames: list[int], fps: int, folder: Path) -> Path:
    """A concat-demuxer list showing each image for its number of frames."""
    listing = folder / f"slideshow-{images[0].stem}.txt"
    lines = [
        f"file '{_quoted(path)}'\nduration {count / fps:.6f}\n"
        for path, count in zip(images, frames, strict=True)
    ]
    # The demuxer ignores the last entry's duration unless the file is listed once more.
    listing.write_text("".join(lines) + f"file '{_quoted(images[-1])}'\n", encoding="utf-8")
    return listing


def _filter_graph(frames: list[int], width: int, height: int, fps: int, subtitled: bool) -> str:
    x, y = _pan_expressions(frames)
    graph = f"[0:v]fps={fps},setsar=1,crop={width}:{height}:x='{x}':y='{y}'" + (
        "[base];[1:v]format=yuva420p,fps=" + str(fps) + "[subs];"
        "[base][subs]overlay=0:H-h:eof_action=repeat"
        if subtitled
        else ""
    )
    return graph + "[video]"


def _pan_expressions(frames: list[int]) -> tuple[str, str]:
    """Piecewise crop offsets: each scene pans along its own path over its own frames."""
    xs, ys, start = [], [], 0
    for index, count in enumerate(frames):
        progress = f"(n-{start})/{max(count - 1, 1)}"
        x, y = (part.format(p=progress) for part in PANS[index % len(PANS)])
        gate = f"between(n,{start},{start + count - 1})"
        xs.append(f"{gate}*{x}")
        ys.append(f"{gate}*{y}")
        start += count
    return "+".join(xs), "+".join(ys)


def _quoted(path: Path) -> str:
    return str(path.resolve()).replace("'", "'\\''")


def _even(value: float) -> int:
    return int(value) // 2 * 2
