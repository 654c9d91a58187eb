"""The offline video follows the prompt, the cast and the language, checked on the MP4s."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from engines import images
from runs.models import RunStatus
from video.models import VideoRun

from .conftest import fetch, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

CAST = [
    {"name": "Ada", "description": "an old lighthouse keeper with grey hair in a blue coat"},
    {"name": "Ben", "description": "a red-haired fisherman in a yellow raincoat"},
]


def make(api, tmp_path: Path, body: dict) -> tuple[dict, Path]:
    answer = api.post("/api/videos/", {"resolution": "640x360", **body}, format="json")
    assert answer.status_code == 202, answer.json()
    run = wait_finished(VideoRun.objects.get(pk=answer.json()["id"]), timeout=240)
    data = api.get(f"/api/videos/{run.pk}/").json()
    assert data["status"] == RunStatus.SUCCEEDED, (data["message"], data["error"])
    path = fetch(api, data["result"]["video_url"], tmp_path / f"{run.pk}.mp4")
    return data["result"], path


def frame_at(path: Path, seconds: float) -> Image.Image:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                return frame.to_image()
    raise AssertionError(f"no frame at {seconds} s")


def middle(scene: dict) -> float:
    return (scene["start"] + scene["end"]) / 2


def test_opposite_settings_give_different_pictures_and_named_speakers(api, tmp_path):
    storm, storm_mp4 = make(api, tmp_path, {
        "title": "Storm", "characters": CAST,
        "prompt": "A storm reaches the harbour at night. Ben pulls the boat onto the rocks.",
    })  # fmt: skip
    meadow, meadow_mp4 = make(api, tmp_path, {
        "title": "Meadow", "characters": CAST,
        "prompt": "Ben walks through a sunny meadow at noon. Ada waves from the hill.",
    })  # fmt: skip
    # The speaker of a line is the character it names, or the one before when none is named.
    assert [s["speaker"] for s in storm["script"]] == ["Ada", "Ben"]
    assert [s["speaker"] for s in meadow["script"]] == ["Ben", "Ada"]
    # The second storm line names no setting: it stays in the night storm.
    dark = frame_at(storm_mp4, middle(storm["script"][1])).crop((0, 0, 640, 240))
    bright = frame_at(meadow_mp4, middle(meadow["script"][0])).crop((0, 0, 640, 240))
    dark_l, bright_l = (ImageStat.Stat(f.convert("L")).mean[0] for f in (dark, bright))
    assert bright_l > dark_l + 60, (dark_l, bright_l)
    r, g, b = ImageStat.Stat(bright).mean
    assert b > r and g > r  # blue sky and green hills, not a grey storm
    hue = ImageStat.Stat(ImageChops.difference(dark, bright)).mean
    assert sum(hue) / 3 > 50


def text_mask(image: Image.Image) -> Image.Image:
    return image.convert("L").point(lambda v: 255 if v > 200 else 0)


def overlap(a: Image.Image, b: Image.Image) -> float:
    both = ImageStat.Stat(ImageChops.multiply(a, b)).sum[0]
    either = ImageStat.Stat(ImageChops.lighter(a, b)).sum[0]
    return both / either if either else 0.0


def test_a_chinese_video_speaks_mandarin_with_readable_subtitles(api, tmp_path, monkeypatch):
    line = "暴风雨的夜里，灯塔照亮了回家的路。"  # noqa: RUF001
    result, mp4 = make(api, tmp_path, {
        "title": "灯塔",
        "characters": [{"name": "小林", "description": "穿红色外套的女孩"},
                       {"name": "老王", "description": "白头发的老人", "voice": "en-us"}],
        "script": [{"speaker": "小林", "text": line, "setting": "夜晚的海港"},
                   {"speaker": "老王", "text": "我们明天早上再出海吧。"}],
    })  # fmt: skip
    assert [s["voice"].split("+")[0] for s in result["script"]] == ["cmn", "cmn"]
    assert [s["speaker"] for s in result["script"]] == ["小林", "老王"]

    # The subtitle band of the first scene, as the MP4 shows it ...
    reference = images.draw_subtitle_band(line, 640, fixed_lines=3)
    shown = frame_at(mp4, middle(result["script"][0]))
    shown = shown.crop((0, 360 - reference.height, 640, 360))
    # ... matches the line drawn with the CJK font found, not the boxes drawn without one.
    glyphs = text_mask(reference.convert("RGBA").convert("RGB"))
    monkeypatch.setattr(images, "CJK_FONTS", ())
    monkeypatch.setattr(images, "_found_cjk_fonts", lambda: ())
    boxes = text_mask(images.draw_subtitle_band(line, 640, fixed_lines=3).convert("RGB"))
    assert ImageChops.difference(glyphs, boxes).getbbox() is not None
    seen = text_mask(shown)
    # (x264 blurs the strokes: a third of them overlapping is a close match; boxes share few.)
    matched, tofu = overlap(seen, glyphs), overlap(seen, boxes)
    assert matched > 0.2 and matched > 3 * tofu, (matched, tofu)
