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
