"""Which language a text is in, and which eSpeak voice can speak it.

A small detector by script (Han, kana, Hangul, Cyrillic, Greek, Arabic...), with common words
telling the main Latin-script languages apart; it needs no model and gives the same answer every
time. Languages are plain codes: "zh" (Mandarin, eSpeak's `cmn`), "en", "de", "fr", "es", "ja"...

The podcast and video steps use it so that a speaker's voice follows the source: a voice that
cannot speak the source's language is switched to the language's own eSpeak voice, keeping its
`+variant` (so two hosts stay two different voices). See docs/engines.md.
"""

from __future__ import annotations

import re
from collections import Counter

# Language code (normalised) -> the eSpeak voice that speaks it best.
DEFAULT_VOICES = {
    "zh": "cmn",
    "en": "en-us",
    "ja": "ja",
    "ko": "ko",
    "ru": "ru",
    "el": "el",
    "ar": "ar",
    "he": "he",
    "hi": "hi",
    "th": "th",
    "de": "de",
    "fr": "fr",
    "es": "es",
    "it": "it",
    "pt": "pt",
    "nl": "nl",
}
# eSpeak and ISO codes that name one language: cmn and zh-* are Mandarin, yue reads Han too.
ALIASES = {"cmn": "zh", "zh": "zh", "yue": "zh", "zho": "zh", "chi": "zh", "eng": "en"}
LATIN_WORDS = {
    "en": "the and of to is in that it for are with as was on this be by from have",
    "de": "der die und das ist nicht ein eine zu den mit von sich auch auf für dem",
    "fr": "le la les et est une des du que dans pour pas sur qui au avec sont",
    "es": "el la los las y es una que del en por con para como pero más sus",
    "it": "il di che la è per una sono gli della nel con non del anche come",
    "pt": "o os que do da em um uma para com não dos das ao mais pelo pela",
    "nl": "de het een en van is dat niet op te zijn met voor ook aan als",
}
LATIN_SETS = {code: frozenset(words.split()) for code, words in LATIN_WORDS.items()}
SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana first: Japanese uses Han characters too
    ("ko", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("zh", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
)
SAMPLE_CHARS = 20_000  # enough to decide; a long source is not scanned whole


def normalise(code: str) -> str:
    """A language or eSpeak voice code as the plain language: cmn -> zh, en-GB -> en."""
    code = code.strip().lower().split("+", 1)[0]
    if code in ALIASES:
        return ALIASES[code]
    head = code.replace("_", "-").split("-", 1)[0]
    return ALIASES.get(head, head)


def detect(text: str) -> str:
    """The language of `text`, or "" when it has no letters to tell by."""
    sample = text[:SAMPLE_CHARS]
    letters = sum(ch.isalpha() for ch in sample)
    if not letters:
        return ""
    counts = {code: len(pattern.findall(sample)) for code, pattern in SCRIPTS}
    if counts["ja"] and counts["ja"] >= 0.1 * (counts["ja"] + counts["zh"]):
        return "ja"
    script, found = max(((c, n) for c, n in counts.items() if c != "ja"), key=lambda t: t[1])
    # Han characters count once per word-ish unit; a third of the letters makes the text Chinese.
    if found and found >= 0.3 * letters:
        return script
    return _latin(sample)


def _latin(sample: str) -> str:
    words = Counter(re.findall(r"[^\W\d_]+", sample.lower()))
    scores = {
        code: sum(n for word, n in words.items() if word in common)
        for code, common in LATIN_SETS.items()
    }
    best = max(scores, key=lambda code: scores[code])
    return best if scores[best] else "en"


def episode_language(text: str, preferred: str) -> str:
    """The language an episode is spoken in: the source's, else the profile's `preferred`."""
    detected = detect(text)
    return detected or normalise(preferred) or "en"


def speaks(voice: str, language: str) -> bool:
    """Whether an eSpeak voice (code with an optional +variant) speaks `language`."""
    return normalise(voice) == normalise(language)


def voice_for(voice: str, language: str) -> str:
    """`voice` when it speaks `language`, else the language's eSpeak voice with the same variant."""
    if not language or speaks(voice, language):
        return voice
    _, plus, variant = voice.partition("+")
    code = normalise(language)
    return DEFAULT_VOICES.get(code, code) + plus + variant


def is_chinese(language: str) -> bool:
    return normalise(language) == "zh"
