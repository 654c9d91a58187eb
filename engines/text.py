"""Local text engine: extractive outlines, templated dialogue and scene scripts, offline."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter

from engines.errors import EngineError
from engines.interfaces import Character, Line, Scene, Section, Speaker

# A word list reads best as plain text, hence the noqa.
STOPWORDS = frozenset(
    """
a about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our ours out over own same she should so some such
than that the their theirs them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours
""".split()  # noqa: SIM905
)
CHINESE_STOP_CHARS = frozenset("的了是在和有也就都而及与着或一个我们你他她它这那之")
SHOTS = ("wide shot", "medium shot", "close-up", "over-the-shoulder shot", "low-angle shot")
MOODS = (
    "warm morning light",
    "soft evening glow",
    "bright daylight",
    "moody blue dusk",
    "golden hour",
    "gentle overcast light",
)


def is_chinese(language: str, text: str = "") -> bool:
    """True for zh/cmn language codes, or when most letters of the text are Han characters."""
    if language.lower().startswith(("zh", "cmn", "yue")):
        return True
    han = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    return han > 0 and han >= 0.5 * sum(ch.isalpha() for ch in text)


def split_sentences(text: str, *, chinese: bool) -> list[str]:
    """Sentences of a text; Chinese ends them at full-width stops, others at . ! ? and a space."""
    # Full-width punctuation is the point here, hence the noqa.
    pattern = r"(?<=[。！？!?；])|\n+" if chinese else r"(?<=[.!?])\s+|\n{2,}"  # noqa: RUF001
    sentences = (s.strip() for s in re.split(pattern, text))
    return [s for s in sentences if len(s) >= (4 if chinese else 12)]


def count_words(text: str) -> int:
    """Words for English-like text; for Chinese each Han character counts as one word."""
    han = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    return han + len(re.findall(r"[A-Za-z0-9']+", text))


def write_outline(sources: list[str], *, sections: int, language: str) -> list[Section]:
    """Pick the most representative sentences of the sources and group them into sections."""
    text = "\n\n".join(s.strip() for s in sources if s and s.strip())
    if not text:
        raise EngineError("the sources contain no text")
    chinese = is_chinese(language, text)
    sentences = split_sentences(text, chinese=chinese)
    if not sentences:
        raise EngineError("the sources contain no complete sentences")
    scores = score_sentences(sentences, chinese=chinese)
    chunks = _chunks(list(range(len(sentences))), max(1, min(sections, len(sentences))))
    overall = Counter(t for s in sentences for t in _terms(s, chinese=chinese))
    return [_section(chunk, sentences, scores, overall, chinese) for chunk in chunks]


def score_sentences(sentences: list[str], *, chinese: bool) -> list[float]:
    """Mean term frequency of each sentence's terms, with a bonus for coming early."""
    terms = [_terms(s, chinese=chinese) for s in sentences]
    frequency = Counter(t for sentence_terms in terms for t in sentence_terms)
    top = max(frequency.values(), default=1)
    scores = []
    for position, sentence_terms in enumerate(terms):
        weight = sum(frequency[t] / top for t in sentence_terms) / (len(sentence_terms) or 1)
        # Openings of documents tend to state the subject; give them a small, fading edge.
        scores.append(weight + 0.2 / (1 + position))
    return scores


def write_transcript(
    outline: list[Section],
    speakers: list[Speaker],
    *,
    intro: str,
    outro: str,
    briefing_suffix: str,
    target_words: int,
    language: str,
) -> list[Line]:
    """A dialogue that opens with the intro, walks the outline in turns and ends with the outro."""
    if len(speakers) < 2:
        raise EngineError("a transcript needs at least two speakers")
    if not outline:
        raise EngineError("the outline is empty")
    chinese = is_chinese(language, " ".join(s.title for s in outline))
    phrases = _phrases(chinese)
    host = speakers[0].name
    lines = [Line(host, _framing(intro, briefing_suffix, phrases["focus"]))]
    budget = max(target_words - count_words(lines[0].text) - count_words(outro), 20)
    lines += _body(outline, speakers, budget, phrases)
    lines.append(Line(host, outro.strip() or phrases["bye"]))
    return lines


def write_video_script(
    prompt: str, characters: list[Character], *, seed: str, scenes: int | None = None
) -> list[Scene]:
    """One scene per prompt sentence, cycling through the characters; a seed fixes the script."""
    sentences = split_sentences(prompt, chinese=is_chinese("", prompt)) or [prompt.strip()]
    if not sentences[0]:
        raise EngineError("the prompt is empty")
    cast: list[Character] = characters or [
        {"name": "Narrator", "description": "a calm storyteller"}
    ]
    rng = random.Random(seed)
    count = scenes or len(sentences)
    first = rng.randrange(len(cast))
    return [
        _scene(sentences[i % len(sentences)], cast[(first + i) % len(cast)], rng)
        for i in range(count)
    ]


def _terms(sentence: str, *, chinese: bool) -> list[str]:
    if chinese:
        han = [ch for ch in sentence if "\u4e00" <= ch <= "\u9fff"]
        # Characters and bigrams: Chinese words are mostly one or two characters long.
        singles = [ch for ch in han if ch not in CHINESE_STOP_CHARS]
        return singles + [a + b for a, b in itertools.pairwise(han)]
    words = re.findall(r"[a-z][a-z'-]+", sentence.lower())
    return [w for w in words if w not in STOPWORDS and len(w) > 2]


def _chunks(indexes: list[int], count: int) -> list[list[int]]:
    size, extra = divmod(len(indexes), count)
    chunks, start = [], 0
    for number in range(count):
        end = start + size + (number < extra)
        chunks.append(indexes[start:end])
        start = end
    return chunks


def _section(
    chunk: list[int], sentences: list[str], scores: list[float], overall: Counter, chinese: bool
) -> Section:
    best = sorted(sorted(chunk, key=lambda i: -scores[i])[:3])  # top three, in reading order
    points = [sentences[i] for i in best]
    return Section(_title(points, overall, chinese), points)


def _title(points: list[str], overall: Counter, chinese: bool) -> str:
    local = Counter(t for p in points for t in _terms(p, chinese=chinese))
    # Frequent here first; ties go to the terms the whole source repeats most.
    ranked = sorted(local, key=lambda t: (-local[t], -overall[t]))
    if chinese:
        bigrams = [t for t in ranked if len(t) == 2 and not set(t) & CHINESE_STOP_CHARS]
        return bigrams[0] if bigrams else points[0][:8]
    top = [word for word, _ in local.most_common(2)]  # ties: first seen, reads more naturally
    text = " ".join(points).lower()
    # Keep the two key words in reading order, so "solar power" is not titled "Power Solar".
    return " ".join(w.capitalize() for w in sorted(top, key=text.find)) or points[0][:40]


def _framing(intro: str, briefing_suffix: str, focus: str) -> str:
    parts = [intro.strip()]
    if briefing_suffix.strip():
        parts.append(focus.format(briefing_suffix.strip().rstrip(".。")))
    return " ".join(p for p in parts if p)


def _body(
    outline: list[Section], speakers: list[Speaker], budget: int, phrases: dict[str, str]
) -> list[Line]:
    lines: list[Line] = []
    turns = [
        (i, p) for i in range(max(len(s.points) for s in outline)) for p in range(len(outline))
    ]
    used = 0
    # Round-robin over sections so a short budget still touches every section once.
    for depth, number in sorted(turns, key=lambda t: (t[0] > 0, t[1], t[0])):
        section = outline[number]
        if depth >= len(section.points) or used >= budget:
            continue
        speaker = speakers[(len(lines) + 1) % len(speakers)].name
        opener = phrases["topic"].format(section.title) if depth == 0 else phrases["more"]
        text = f"{opener}{phrases['space']}{section.points[depth]}"
        lines.append(Line(speaker, text))
        used += count_words(text)
    return _pad(lines, outline, speakers, budget - used, phrases)


def _pad(
    lines: list[Line],
    outline: list[Section],
    speakers: list[Speaker],
    missing: int,
    phrases: dict[str, str],
) -> list[Line]:
    """Add recap turns when the outline is shorter than the target length."""
    points = [p for s in outline for p in s.points]
    index = 0
    while missing > 10 and index < 3 * len(points):
        text = f"{phrases['recap']}{phrases['space']}{points[index % len(points)]}"
        lines.append(Line(speakers[(len(lines) + 1) % len(speakers)].name, text))
        missing -= count_words(text)
        index += 1
    return lines


def _phrases(chinese: bool) -> dict[str, str]:
    if chinese:
        return {
            "focus": "今天的重点：{}。",  # noqa: RUF001
            "topic": "我们来谈谈{}。",
            "more": "另外，",  # noqa: RUF001
            "recap": "回顾一下，",  # noqa: RUF001
            "bye": "感谢收听，下期再见。",  # noqa: RUF001
            "space": "",
        }
    return {
        "focus": "Today's focus: {}.",
        "topic": "Let's talk about {}.",
        "more": "And there's more.",
        "recap": "To recap:",
        "bye": "Thanks for listening.",
        "space": " ",
    }


def _scene(sentence: str, character: Character, rng: random.Random) -> Scene:
    name = str(character.get("name") or "Narrator")
    look = str(character.get("description") or "").strip()
    who = f"{name}, {look}" if look else name
    description = f"{rng.choice(SHOTS)} of {who}, {rng.choice(MOODS)}: {sentence}"
    return Scene(character=name, text=sentence, description=description)
