"""Markdown sources are read for their words: the markup is not spoken."""

from __future__ import annotations

from podcast.markdown import to_plain_text

SOURCE = """\
# Bees at work

Workers **fan** their wings; see [the study](https://example.org/fan) and `the data`.

- Foragers dance
- Nurses feed the *brood*

```python
print("never read aloud")
```

| hive | bees |
|------|------|
| A    | 5000 |

> Honey keeps for years.
"""


def test_markup_is_dropped_and_headings_become_sentences():
    text = to_plain_text(SOURCE)
    assert "Bees at work." in text
    assert "Workers fan their wings; see the study and the data." in text
    assert "Foragers dance" in text and "Nurses feed the brood" in text
    assert "Honey keeps for years." in text
    for markup in ("#", "**", "](", "`", "never read aloud", "|", "---", ">"):
        assert markup not in text, markup


def test_plain_text_passes_through_unchanged():
    plain = "Bees make honey. It keeps for years.\n\nA second paragraph."
    assert to_plain_text(plain) == plain


def test_the_parser_keeps_what_commonmark_calls_text():
    text = to_plain_text(
        "Title\n=====\n\n"
        "See <https://example.org/bees> and [the study][s] on snake_case_name.\n\n"
        "    print('indented code is not read')\n\n"
        "Subtitle\n--------\n\n"
        "Some <b>bold</b> words.\n\n"
        '[s]: https://example.org/study "Study"\n'
    )
    assert "Title." in text and "Subtitle." in text  # setext headings, underlines gone
    assert "=" not in text and "--" not in text
    assert "example.org/bees" in text  # the autolink is read, as its address
    assert "the study" in text and "example.org/study" not in text  # reference link: its words
    assert "snake_case_name" in text
    assert "indented code" not in text and "<b>" not in text and "Some bold words." in text
