from __future__ import annotations

from pathlib import Path

import pytest

from engines.errors import EngineError
from engines.images import draw_portrait, draw_scene
from engines.media import probe
from engines.video import compose, frame_counts


@pytest.fixture
def frames(tmp_path: Path) -> list[Path]:
    portrait = draw_portrait("Ada", "a scientist in a blue coat", tmp_path / "ada.png")
    return [
        draw_scene(
            f"Line {i}",
            f"place {i}",
            portrait=portrait,
            subtitle="",
            out_path=tmp_path / f"scene{i}.png",
            size=(320, 180),
        )
        for i in range(3)
    ]


def test_video_follows_the_audio_with_h264_and_aac(frames, tone, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    # Scene seconds add up to 3, the audio lasts 4: the scenes stretch to fill it.
    compose(
        [(f, 1.0) for f in frames],
        tone(seconds=4.0),
        out,
        width=320,
        height=180,
        fps=12,
        subtitles=["Hello there.", "", "你好世界。"],
    )
    info = probe(out)
    video, audio = info.first("video"), info.first("audio")
    assert (video.codec, video.width, video.height, video.pix_fmt) == ("h264", 320, 180, "yuv420p")
    assert audio.codec == "aac"
    assert info.duration_seconds == pytest.approx(4.0, abs=0.5)


def test_video_is_faststart(frames, tone, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    compose([(frames[0], 1.0)], tone(seconds=1.0), out, width=160, height=90, fps=10)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # playable while it downloads


def test_frame_counts_fill_the_audio_exactly() -> None:
    counts = frame_counts([1.0, 2.0, 0.3], audio_seconds=10.0, fps=25)
    assert sum(counts) == 250 and counts[1] > counts[0] > counts[2] >= 1


@pytest.mark.parametrize(
    ("width", "height", "subtitles"), [(321, 180, None), (320, 180, ["only one", "two"])]
)
def test_bad_arguments_are_permanent_errors(frames, tone, tmp_path, width, height, subtitles):
    with pytest.raises(EngineError):
        compose(
            [(frames[0], 1.0)],
            tone(seconds=1.0),
            tmp_path / "x.mp4",
            width=width,
            height=height,
            fps=10,
            subtitles=subtitles,
        )
