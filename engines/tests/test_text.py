from __future__ import annotations

import itertools

import pytest

from engines.errors import EngineError
from engines.text import (
    Speaker,
    count_words,
    write_outline,
    write_transcript,
    write_video_script,
)

ENGLISH = (
    "Solar power has grown faster than any other energy source in the last decade. "
    "Panels are cheaper than ever, and installation costs keep falling. "
    "Grid operators now face too much solar power at noon and too little at night. "
    "Batteries are the obvious answer, but they remain expensive at grid scale. "
    "Some cities experiment with pumped hydro and thermal storage instead. "
    "Electric cars could become a giant distributed battery for the grid. "
    "Policy makers must decide who pays for the grid upgrades. "
    "The next decade will decide how solar power fits into a stable grid."
)
# Chinese punctuation is the point of this text, hence the noqa.
CHINESE = (
    "太阳能是过去十年增长最快的能源。太阳能电池板比以往任何时候都便宜。"
    "电网运营商面临新的问题：中午电力过剩，夜间电力不足！电池是显而易见的答案。"  # noqa: RUF001
    "一些城市尝试抽水蓄能和热能储存。未来十年将决定太阳能如何融入稳定的电网？"  # noqa: RUF001
)
LONG_ENGLISH = " ".join(
    f"{place} number {i} {verb} the {thing} before the summer heat arrives."
    for i, (place, verb, thing) in enumerate(
        itertools.product(
            ("The north farm", "A rooftop array", "The river dam", "Each wind park"),
            ("feeds", "stores", "balances"),
            ("city grid", "battery bank", "night load"),
        )
    )
)
HOSTS = [Speaker("Alex", "host", "en-us", 40, 170), Speaker("Sam", "expert", "en-gb", 70, 160)]


def test_outline_has_the_requested_sections_of_source_sentences() -> None:
    outline = write_outline([ENGLISH], sections=3, language="en")
    assert len(outline) == 3
    assert all(s.title and 1 <= len(s.points) <= 3 for s in outline)
    assert all(point in ENGLISH for s in outline for point in s.points)
    assert outline[0].title == "Solar power"  # the key phrase, not the first two words


def test_chinese_outline_splits_on_chinese_stops() -> None:
    outline = write_outline([CHINESE], sections=2, language="zh")
    points = [p for s in outline for p in s.points]
    assert len(outline) == 2 and all(p[-1] in "。！？" for p in points)  # noqa: RUF001
    assert "太阳" in outline[0].title


def test_empty_sources_are_a_permanent_error() -> None:
    with pytest.raises(EngineError):
        write_outline(["  "], sections=3, language="en")


def test_transcript_alternates_and_keeps_the_framing() -> None:
    outline = write_outline([ENGLISH], sections=3, language="en")
    lines = write_transcript(
        outline,
        HOSTS,
        intro="Welcome to Energy Now.",
        outro="Bye for now.",
        briefing_suffix="Keep it practical",
        target_words=150,
        language="en",
    )
    assert lines[0].text.startswith("Welcome to Energy Now.")
    assert "Keep it practical" in lines[0].text
    assert lines[-1].text == "Bye for now."
    body = [line.speaker for line in lines[1:-1]]
    assert all(a != b for a, b in itertools.pairwise(body))
    assert {"Alex", "Sam"} <= set(body)


def test_transcript_length_follows_the_target() -> None:
    outline = write_outline([LONG_ENGLISH], sections=2, language="en", points=12)

    def words(target: int) -> int:
        lines = write_transcript(
            outline,
            HOSTS,
            intro="Hi.",
            outro="Bye.",
            briefing_suffix="",
            target_words=target,
            language="en",
        )
        return sum(count_words(line.text) for line in lines)

    short, long = words(60), words(300)
    assert short < long
    assert 200 <= long <= 360
    # A short source is not padded to the target: it is said once, with nothing repeated.
    small = write_outline([ENGLISH], sections=2, language="en")
    lines = write_transcript(small, HOSTS, intro="Hi.", outro="Bye.", briefing_suffix="",
                             target_words=2000, language="en")  # fmt: skip
    assert len({line.text for line in lines}) == len(lines)


def test_chinese_transcript_uses_chinese_framing() -> None:
    outline = write_outline([CHINESE], sections=2, language="zh")
    lines = write_transcript(
        outline,
        HOSTS,
        intro="欢迎收听。",
        outro="再见。",
        briefing_suffix="",
        target_words=80,
        language="zh",
    )
    assert "太阳" in lines[2].text and lines[2].text.endswith("\uff1f")  # the host asks
    assert lines[3].text == outline[0].points[0]  # the guest answers in the source's words


def test_a_transcript_needs_two_speakers() -> None:
    with pytest.raises(EngineError):
        write_transcript(
            [], HOSTS[:1], intro="", outro="", briefing_suffix="", target_words=10, language="en"
        )


def test_video_script_is_one_scene_per_line_and_repeatable() -> None:
    cast = [{"name": "Fox", "description": "a red fox"}, {"name": "Owl", "description": "an owl"}]
    prompt = "A fox finds a key. It opens a tiny door. Inside is a garden."
    script = write_video_script(prompt, cast, seed="run-1")
    assert [s.text for s in script] == [
        "A fox finds a key.",
        "It opens a tiny door.",
        "Inside is a garden.",
    ]
    # The fox is named and goes on ("It opens..."): every line is the fox's, none the owl's.
    assert [s.character for s in script] == ["Fox", "Fox", "Fox"]
    story = "The owl wakes at night. Fox hears it. The owl calls again. It is raining now."
    assert [s.character for s in write_video_script(story, cast, seed="s")] == [
        "Owl", "Fox", "Owl", "Owl"
    ]  # fmt: skip
    assert script == write_video_script(prompt, cast, seed="run-1")
    assert len(write_video_script(prompt, cast, seed="x", scenes=5)) == 5
