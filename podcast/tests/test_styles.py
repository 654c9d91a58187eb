"""Outline styles change the episode: one arc for `narrative`, asked sections for `questions`."""

from __future__ import annotations

from engines import text
from podcast.models import OutlineStyle
from podcast.styles import shape_dialogue, shape_outline

from .conftest import SHORT_SOURCE

SPEAKERS = [text.Speaker("Ann", "host", "en-gb"), text.Speaker("Bob", "guest", "en-us")]


def local_episode(style: str, language: str = "en", source: str = SHORT_SOURCE):
    outline = text.write_outline([source], sections=2, language=language)
    outline = shape_outline(outline, style)
    lines = text.write_transcript(outline, SPEAKERS, intro="Hi.", outro="Bye.", briefing_suffix="",
                                  target_words=120, language=language)  # fmt: skip
    return outline, shape_dialogue(lines, outline, SPEAKERS, style=style, language=language)


def test_key_points_keeps_the_engines_sections_and_lines():
    outline, lines = local_episode(OutlineStyle.KEY_POINTS)
    assert len(outline) == 2
    assert not any(line.text.startswith("What do our sources say") for line in lines)


def test_narrative_tells_every_point_as_one_arc_in_reading_order():
    sections = text.write_outline([SHORT_SOURCE], sections=2, language="en")
    outline, _ = local_episode(OutlineStyle.NARRATIVE)
    assert len(outline) == 1
    assert outline[0].points == [point for section in sections for point in section.points]


def test_questions_has_another_speaker_ask_before_each_section_is_answered():
    outline, lines = local_episode(OutlineStyle.QUESTIONS)
    asked = [i for i, line in enumerate(lines) if line.text.startswith("What do our sources say")]

    assert len(asked) == len(outline) == 2
    for index, section in zip(asked, outline, strict=True):
        assert lines[index].text == f"What do our sources say about {section.title}?"
        answer = lines[index + 1]
        assert section.points[0] in answer.text
        assert lines[index].speaker != answer.speaker


def test_questions_in_chinese_are_asked_in_chinese():
    source = "蜜蜂用摇摆舞告诉同伴花在哪里。舞蹈的角度指向食物的方向。蜂蜜可以保存很多年。"
    _, lines = local_episode(OutlineStyle.QUESTIONS, language="cmn", source=source)
    assert any(
        line.text.startswith("关于") and line.text.endswith("资料里怎么说\uff1f") for line in lines
    )
