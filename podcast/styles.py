"""Outline styles of an episode profile: how the outline and the dialogue are shaped."""

from __future__ import annotations

from engines.interfaces import Line, Section, Speaker
from engines.text import is_chinese

from .models import OutlineStyle


def shape_outline(outline: list[Section], style: str) -> list[Section]:
    """`narrative` tells all points as one arc, in reading order; the others keep the sections."""
    if style == OutlineStyle.NARRATIVE and len(outline) > 1:
        return [Section(outline[0].title, [point for s in outline for point in s.points])]
    return outline


def shape_dialogue(
    lines: list[Line], outline: list[Section], speakers: list[Speaker], *, style: str, language: str
) -> list[Line]:
    """`questions`: before each section's first point is spoken, another speaker asks about it."""
    if style != OutlineStyle.QUESTIONS:
        return lines
    asks = {}
    for section in outline:
        if section.points and (at := _first_line_with(lines, section.points[0])) is not None:
            asks[at] = section.title
    shaped: list[Line] = []
    for index, line in enumerate(lines):
        if index in asks:
            shaped.append(
                Line(_asker(line.speaker, shaped, speakers), _question(asks[index], language))
            )
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
