from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engines.images import (
    LocalImageEngine,
    draw_portrait,
    draw_scene,
    draw_subtitle_band,
    load_font,
)


def test_portraits_are_sized_and_stable_per_character(tmp_path: Path) -> None:
    first = draw_portrait("Ada", "red coat", tmp_path / "a.png", size=(256, 256))
    again = draw_portrait("Ada", "red coat", tmp_path / "b.png", size=(256, 256))
    other = draw_portrait("Bo", "green hat", tmp_path / "c.png", size=(256, 256))
    assert Image.open(first).size == (256, 256)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()


def test_scene_has_the_requested_size_with_portrait_and_subtitle(tmp_path: Path) -> None:
    portrait = draw_portrait("Ada", "red coat", tmp_path / "a.png")
    plain = draw_scene(
        "Hi", "beach", portrait=None, subtitle="", out_path=tmp_path / "p.png", size=(640, 360)
    )
    full = draw_scene(
        "Hi",
        "beach",
        portrait=portrait,
        subtitle="Hi there",
        out_path=tmp_path / "f.png",
        size=(640, 360),
    )
    assert Image.open(full).size == (640, 360)
    assert Image.open(plain).tobytes() != Image.open(full).tobytes()


def test_subtitle_bands_keep_one_height_and_wrap_long_text() -> None:
    short = draw_subtitle_band("Hi.", 640, fixed_lines=3)
    long = draw_subtitle_band("word " * 200, 640, fixed_lines=3)
    chinese = draw_subtitle_band("这是一个很长的中文字幕" * 10, 640, fixed_lines=3)
    assert short.size == long.size == chinese.size
    assert draw_subtitle_band("", 640, fixed_lines=3).getbbox() is None  # fully transparent


def test_the_configured_font_draws_the_captions(tmp_path: Path) -> None:
    serif = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf")
    if not serif.is_file():
        pytest.skip("needs a second TrueType font besides the default")
    assert getattr(load_font(20, "Ada", font_path=str(serif)), "path", None) == str(serif)
    plain = LocalImageEngine().draw_portrait("Ada", "red coat", tmp_path / "a.png")
    styled = LocalImageEngine(str(serif)).draw_portrait("Ada", "red coat", tmp_path / "b.png")
    assert plain.read_bytes() != styled.read_bytes()
