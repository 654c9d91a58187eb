"""Markdown sources read aloud: keep the words, drop the markup."""

from __future__ import annotations

import re

FENCED_CODE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
QUOTE_MARKER = re.compile(r"^\s*>\s?", re.MULTILINE)
IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|`+)(\S(?:.*?\S)?)\1")
TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|[\s:|-]*$", re.MULTILINE)
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
SENTENCE_END = re.compile("[.!?:\u3002\uff01\uff1f\uff1a]$")  # also the CJK full stops


def to_plain_text(text: str) -> str:
    """Text a listener can follow: headings become sentences of their own, code is left out."""
    text = FENCED_CODE.sub("", text)
    text = HEADING.sub(lambda m: "\n" + _as_sentence(m.group(1)) + "\n", text)
    text = TABLE_RULE.sub("", text)
    text = IMAGE.sub(r"\1", text)
    text = LINK.sub(r"\1", text)
    text = EMPHASIS.sub(r"\2", text)
    text = HTML_TAG.sub("", text)
    text = LIST_MARKER.sub("", text)
    text = QUOTE_MARKER.sub("", text)
    return text.replace("|", " ")


def _as_sentence(heading: str) -> str:
    heading = heading.strip()
    return heading if not heading or SENTENCE_END.search(heading) else heading + "."
