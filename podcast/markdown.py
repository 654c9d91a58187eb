"""Markdown sources read aloud: keep the words, drop the markup.

The text is parsed by a CommonMark parser (markdown-it-py, with GitHub's tables and
strikethrough), and its tokens are read back as plain text, so what CommonMark calls text stays
text: `snake_case_name` and `2*3*4` keep their characters, autolinks are read as their address,
reference links as their words (the definitions are not read), and setext headings, indented and
fenced code, HTML and table rules are handled as the structure they are. Headings become
sentences of their own; code blocks are left out; list items and table rows become lines.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

SENTENCE_END = re.compile("[.!?:;\u3002\uff01\uff1f\uff1a\uff1b]$")  # also the CJK stops
SKIPPED_BLOCKS = frozenset({"code_block", "fence", "html_block", "hr"})
_parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def to_plain_text(text: str) -> str:
    """Text a listener can follow: headings become sentences of their own, code is left out."""
    blocks: list[str] = []
    cells: list[str] = []
    in_heading = in_cell = False
    for token in _parser.parse(text):
        kind = token.type
        if kind in SKIPPED_BLOCKS:
            continue
        if kind == "heading_open":
            in_heading = True
        elif kind == "heading_close":
            in_heading = False
        elif kind in ("th_open", "td_open"):
            in_cell = True
        elif kind in ("th_close", "td_close"):
            in_cell = False
        elif kind == "tr_close":
            blocks.append(", ".join(c for c in cells if c))
            cells = []
        elif kind == "inline":
            words = _inline(token.children or [])
            if in_cell:
                cells.append(words)
            elif in_heading:
                blocks.append(_as_sentence(words))
            elif words:
                blocks.append(words)
    return "\n\n".join(block for block in blocks if block.strip())


def _inline(children: list[Token]) -> str:
    parts: list[str] = []
    autolink = False
    for child in children:
        kind = child.type
        if kind == "link_open":
            autolink = child.markup == "autolink"
        elif kind == "link_close":
            autolink = False
        elif kind == "text":
            parts.append(_spoken_address(child.content) if autolink else child.content)
        elif kind == "code_inline":
            parts.append(child.content)
        elif kind == "image":
            parts.append(_inline(child.children or []) or child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append("\n")
        # html_inline and the emphasis/strikethrough markers carry no words
    return "".join(parts).strip()


def _spoken_address(address: str) -> str:
    """An autolink's address without its scheme: "example.org/fan", not "https://..."."""
    return re.sub(r"^(?:https?://|mailto:)", "", address).rstrip("/")


def _as_sentence(heading: str) -> str:
    heading = heading.strip()
    return heading if not heading or SENTENCE_END.search(heading) else heading + "."
