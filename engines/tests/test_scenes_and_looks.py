"""The offline pictures follow the words: scene settings, portraits, and readable Chinese."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from engines import images
from engines.scenery import Setting, read_setting

SIZE = (320, 180)


def frame(tmp_path: Path, description: str, text: str = "") -> Image.Image:
    path = tmp_path / f"{abs(hash(description))}.png"
    images.draw_scene(text, description, portrait=None, subtitle="", out_path=path, size=SIZE)
    return Image.open(path).convert("RGB")


def brightness(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L")).mean[0]


def test_settings_are_read_from_english_and_chinese_words() -> None:
    assert read_setting("A storm reaches the harbour at night") == Setting("night", "storm", "sea")
    assert read_setting("a sunny meadow at noon") == Setting("day", "clear", "meadow")
    assert read_setting("雨夜的城市街道") == Setting("night", "rain", "city")
    assert read_setting("inside the old library").place == "indoors"
    assert read_setting("deep in the forest").place == "forest"
    # What a line does not name, it keeps from the line before.
    before = read_setting("a harbour at night")
    assert read_setting("Ben pulls the net in.", before) == before


def test_a_night_storm_and_a_sunny_meadow_look_different(tmp_path: Path) -> None:
    storm = frame(tmp_path, "A storm reaches the harbour at night")
    meadow = frame(tmp_path, "A sunny meadow at noon")
    assert brightness(meadow) > brightness(storm) + 60
    r, g, _ = ImageStat.Stat(meadow).mean
    assert g > r and g > 100  # green land under a blue sky
    sr, sg, sb = ImageStat.Stat(storm).mean
    assert max(sr, sg, sb) < 90  # dark and colourless
    # Each place has its own picture, whatever the time of day.
    places = [frame(tmp_path, f"{p} at noon") for p in ("the sea", "a city", "a forest",
                                                         "indoors in a kitchen")]  # fmt: skip
    for one, other in itertools.pairwise(places):
        assert ImageStat.Stat(ImageChops.difference(one, other)).mean[0] > 15


def portrait(tmp_path: Path, name: str, description: str) -> Image.Image:
    path = tmp_path / f"{name}.png"
    images.draw_portrait(name, description, path, size=(256, 256))
    return Image.open(path).convert("RGB")


def test_portraits_follow_their_descriptions_and_differ(tmp_path: Path) -> None:
    ben = portrait(tmp_path, "Ben", "a red-haired fisherman in a yellow raincoat")
    ada = portrait(tmp_path, "Ada", "an old lighthouse keeper with grey hair in a blue coat")
    hair, clothes = (128, 70), (85, 195)  # above the brow; a shoulder (above the name tag)
    assert ben.getpixel(hair) == (180, 70, 30)  # red hair, not yellow
    assert ben.getpixel(clothes) == (235, 205, 50)  # the yellow raincoat
    assert ada.getpixel(hair) == (170, 170, 172)  # grey
    assert ada.getpixel(clothes) == (45, 85, 200)  # the blue coat
    assert ImageStat.Stat(ImageChops.difference(ben, ada)).mean[0] > 20
    # Described alike, two characters still differ; one character always looks the same.
    twin = portrait(tmp_path, "Cy", "a red-haired fisherman in a yellow raincoat")
    assert ImageStat.Stat(ImageChops.difference(ben, twin)).mean[0] > 5
    assert (
        portrait(tmp_path, "Ben2", "x")
        and ben.tobytes()
        == portrait(tmp_path, "Ben", "a red-haired fisherman in a yellow raincoat").tobytes()
    )


def test_a_child_and_an_old_man_are_drawn_apart(tmp_path: Path) -> None:
    child = portrait(tmp_path, "Mia", "a little girl in a green dress")
    old = portrait(tmp_path, "Tom", "an elderly man with a beard and glasses in a brown coat")
    assert child.getpixel((100, 205)) == (50, 140, 60)
    assert old.getpixel((85, 195)) == (115, 75, 45)
    assert ImageStat.Stat(ImageChops.difference(child, old)).mean[0] > 20


def band(text: str, monkeypatch: pytest.MonkeyPatch | None = None) -> Image.Image:
    return images.draw_subtitle_band(text, 640).convert("L")


def test_chinese_subtitles_are_glyphs_with_nothing_configured(monkeypatch) -> None:
    one, two = "蜜蜂在夜里飞回蜂巢", "海港的灯塔亮起来了"
    # With a CJK font (found by itself), two different lines draw different shapes ...
    assert images.load_font(20, one).path.endswith((".ttc", ".ttf", ".otf"))
    readable = ImageChops.difference(band(one), band(two)).getbbox()
    # ... while with the font missing, every character is the same empty box (tofu).
    monkeypatch.setattr(images, "CJK_FONTS", ())
    monkeypatch.setattr(images, "_found_cjk_fonts", lambda: ())
    boxes = ImageChops.difference(band(one), band(two)).getbbox()
    assert readable is not None and boxes is None
