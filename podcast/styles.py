"""Outline styles of an episode profile: how the outline and the dialogue are shaped."""

from __future__ import annotations

from engines import language
from engines.interfaces import Line, Section, Speaker
from engines.text import is_chinese

from .models import OutlineStyle

# Greetings for an episode whose language is not the one its profile's intro and outro are in.
FRAMINGS = {
    "en": {
        "intro": "Welcome to {episode}. Today we go through what our sources have to say.",
        "outro": "That was {episode}. Thanks for listening, and see you next time.",
    },
    "zh": {
        "intro": "欢迎收听{episode}。今天我们一起聊聊资料里的内容。",
        "outro": "以上就是{episode}的全部内容。感谢收听，我们下期再见。",  # noqa: RUF001
    },
}


def framing(text: str, spoken: str, kind: str) -> str:
    """The profile's intro or outro, or the built-in one in the episode's language when the
    profile's is written in another language (an English greeting in a Chinese episode)."""
    written = language.detect(text.replace("{episode}", ""))
    code = language.normalise(spoken)
    if written and written != code and code in FRAMINGS:
        return FRAMINGS[code][kind]
    return text


def shape_outline(outline: list[Section], style: str) -> list[Section]:
    """`narrative` tells all points as one arc, in reading order; the others keep the sections."""
    if style == OutlineStyle.NARRATIVE and len(outline) > 1:
        return [Section(outline[0].title, [point for s in outline for point in s.points])]
    return outline


def shape_dialogue(
    lines: list[Line], outline: list[Section], speakers: list[Speaker], *, style: str, language: str
) -> list[Line]:
    """`questions`: before each section's first point is spoken, another speaker asks about it
    in the style's words (replacing the writer's own question there, if it asked one)."""
    if style != OutlineStyle.QUESTIONS:
        return lines
    asks = {}
    for section in outline:
        if section.points and (at := _first_line_with(lines, section.points[0])) is not None:
            asks[at] = section.title
    shaped: list[Line] = []
    for index, line in enumerate(lines):
        if index in asks:
            question = _question(asks[index], language)
            before = shaped[-1] if shaped else None
            if before and before.speaker != line.speaker and before.text.endswith(("?", "\uff1f")):
                shaped[-1] = Line(before.speaker, question)
            else:
                shaped.append(Line(_asker(line.speaker, shaped, speakers), question))
        shaped.append(line)
    return shaped


def _first_line_with(lines: list[Line], point: str) -> int | None:
    # Skip the intro: a question before the welcome would open the show.
    return next((i for i, line in enumerate(lines) if i and point in line.text), None)


def _asker(answerer: str, before: list[Line], speakers: list[Speaker]) -> str:
    """Whoever spoke last, unless that is the answerer; then the next speaker in the profile."""
    if before and before[-1].speaker != answerer:
        return before[-1].speaker
    names = [speaker.name for speaker in speakers]
    return names[(names.index(answerer) + 1) % len(names)]


def _question(title: str, language: str) -> str:
    if is_chinese(language, title):
        return f"关于{title}，资料里怎么说？"  # noqa: RUF001 - Chinese punctuation
    return f"What do our sources say about {title}?"
