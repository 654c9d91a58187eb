"""Local text engine: extractive outlines, templated dialogue and scene scripts, offline."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections import Counter
from dataclasses import asdict

from engines.dialogue import GLUE_WORDS
from engines.dialogue import write as write_dialogue
from engines.errors import EngineError
from engines.interfaces import Character, Line, Scene, Section, Speaker
from engines.scenery import Setting, read_setting

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
CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")  # don't, thirty-five, Größe, мёд
TOKEN = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*|[^\w\s]")
CHINESE_STOP_CHARS = frozenset("的了是在和有也就都而及与着或一个我们你他她它这那之")
# Characters that do not sit inside a Chinese key phrase (particles, copulas, adverbs, measures).
CHINESE_FUNCTION_CHARS = CHINESE_STOP_CHARS | frozenset(
    "如比将把被让给对从向很更最又还再们以为所可能会要到"
)
# Words that open a noun phrase, and common verbs that end one (a title is a thing, not a clause).
PHRASE_OPENERS = frozenset(
    """
a an the their his her its our your my this these those of in on at for with from by about into
to under over through between among like than because without within across after before during
per via and or but
""".split()  # noqa: SIM905
)
VERBISH = frozenset(
    """
keep keeps make makes tell tells say says point points turn turns grow grows face faces remain
remains become becomes decide decides pay pays fit fits find finds show shows use uses need needs
take takes give gives get gets go goes come comes know knows see sees seem seems help helps work
works live lives move moves build builds bring brings mean means let lets run runs look looks
want wants put puts hold holds lead leads reach reaches cause causes create creates produce
produces provide provides include includes carry carries could would should might must can will
cannot may together away instead also even still never always often already
""".split()  # noqa: SIM905
)
CONDENSE_PARTS = 8  # a condensed source takes sentences from this many stretches of it
SHOTS = ("wide shot", "medium shot", "close-up", "over-the-shoulder shot", "low-angle shot")


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
    # A line break inside a sentence is not a pause: English joins with a space, Chinese with none.
    sentences = (("" if chinese else " ").join(s.split()) for s in re.split(pattern, text))
    return [s for s in sentences if len(s) >= (4 if chinese else 12)]


def count_words(text: str) -> int:
    """Words of spaced text; each Chinese or Japanese character counts as one word."""
    cjk = len(CJK_CHAR.findall(text))
    return cjk + len(WORD.findall(CJK_CHAR.sub(" ", text)))


def write_outline(
    sources: list[str], *, sections: int, language: str, points: int = 3
) -> list[Section]:
    """Pick the most representative sentences of the sources and group them into sections.

    Each section keeps its best `points` sentences, in reading order, and is titled by its key
    phrase ("Waggle dance", not the first two words of a sentence).
    """
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
    outline = [_section(c, sentences, scores, overall, chinese, max(1, points)) for c in chunks]
    _distinct_titles(outline, overall, chinese)
    return outline


def points_for(sources: list[str], *, words: int, language: str) -> int:
    """How many points a section needs to fill `words` with these sources' sentences (2-12)."""
    sample = "\n\n".join(sources)[:50_000]
    sentences = split_sentences(sample, chinese=is_chinese(language, sample[:2000])) or [sample]
    average = sum(count_words(s) for s in sentences) / len(sentences)
    return max(2, min(12, math.ceil(words / (average + GLUE_WORDS))))


def condense(sources: list[str], max_chars: int, *, language: str) -> list[str]:
    """The sources as they are when they fit in `max_chars` (as JSON text), else one text of their
    key sentences, in reading order, that does. The sentences come from every part of the sources
    in turn (the best of each part first), so a long document is covered to its end."""
    if len(json.dumps(sources, ensure_ascii=False)) <= max_chars:
        return sources
    whole = "\n\n".join(s.strip() for s in sources if s and s.strip())
    chinese = is_chinese(language, whole[:2000])
    sentences = split_sentences(whole, chinese=chinese) or [whole]
    scores = score_sentences(sentences, chinese=chinese)
    parts = [
        sorted(chunk, key=lambda i: -scores[i])
        for chunk in _chunks(list(range(len(sentences))), min(CONDENSE_PARTS, len(sentences)))
    ]
    budget, used, chosen = max(max_chars, 200) - 4, 0, set()
    for rank in range(max(len(part) for part in parts)):
        for part in parts:
            if rank < len(part):
                cost = len(json.dumps(sentences[part[rank]], ensure_ascii=False)) - 1
                if used + cost <= budget:
                    chosen.add(part[rank])
                    used += cost
    if not chosen:  # not one sentence fits: its beginning
        return [sentences[0][: budget // 2]]
    return [("" if chinese else " ").join(sentences[i] for i in sorted(chosen))]


def fit_outline(outline: list[Section], max_chars: int) -> list[Section]:
    """The outline with its last points dropped, longest sections first, until it fits."""
    fitted = [Section(s.title, list(s.points)) for s in outline]

    def size() -> int:
        return len(json.dumps([asdict(s) for s in fitted], ensure_ascii=False))

    while size() > max_chars and any(len(s.points) > 1 for s in fitted):
        max(fitted, key=lambda s: len(s.points)).points.pop()
    while size() > max_chars and any(len(p) > 80 for s in fitted for p in s.points):
        for section in fitted:
            section.points = [p[: max(80, len(p) * 3 // 4)] for p in section.points]
    return fitted


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
    """A conversation over the outline (`engines.dialogue`): the host opens with the intro, asks
    about each section and follows up, the guests answer with the source's sentences, one line
    recaps, and the host closes with the outro. No line is said twice."""
    if len(speakers) < 2:
        raise EngineError("a transcript needs at least two speakers")
    if not outline or not any(s.points for s in outline):
        raise EngineError("the outline is empty")
    chinese = is_chinese(language, " ".join(s.title for s in outline))
    overall = Counter(t for s in outline for p in s.points for t in _terms(p, chinese=chinese))
    return write_dialogue(
        outline,
        speakers,
        intro=intro,
        outro=outro,
        briefing_suffix=briefing_suffix,
        target_words=target_words,
        chinese=chinese,
        key_phrase=lambda point: key_phrase([point], overall, chinese=chinese, title=False),
        count_words=count_words,
    )


def write_video_script(
    prompt: str, characters: list[Character], *, seed: str, scenes: int | None = None
) -> list[Scene]:
    """One scene per prompt sentence; a seed fixes the script.

    A sentence that names a character is theirs (the earliest named when several are); one that
    names nobody goes on with the character before ("Ben pulls the net. He waves."). Each scene
    carries its setting (`engines.scenery`): what a sentence names (night, a storm, the harbour)
    holds until another sentence names something else.
    """
    sentences = split_sentences(prompt, chinese=is_chinese("", prompt)) or [prompt.strip()]
    if not sentences[0]:
        raise EngineError("the prompt is empty")
    cast: list[Character] = characters or [
        {"name": "Narrator", "description": "a calm storyteller"}
    ]
    rng = random.Random(seed)
    speaker, setting = cast[0], None
    written = []
    for index in range(scenes or len(sentences)):
        sentence = sentences[index % len(sentences)]
        speaker = _named_character(sentence, cast) or speaker
        setting = read_setting(sentence, setting)
        written.append(_scene(sentence, speaker, setting, rng))
    return written


def _named_character(sentence: str, cast: list[Character]) -> Character | None:
    lowered = sentence.lower()
    found = []
    for character in cast:
        name = str(character.get("name") or "").strip().lower()
        if not name:
            continue
        pattern = rf"\b{re.escape(name)}\b" if name.isascii() else re.escape(name)
        if match := re.search(pattern, lowered):
            found.append((match.start(), character))
    return min(found, key=lambda item: item[0])[1] if found else None


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
    chunk: list[int],
    sentences: list[str],
    scores: list[float],
    overall: Counter,
    chinese: bool,
    points: int,
) -> Section:
    best = sorted(sorted(chunk, key=lambda i: -scores[i])[:points])  # the best, in reading order
    chosen = [sentences[i] for i in best]
    return Section(key_phrase(chosen, overall, chinese=chinese), chosen)


def _distinct_titles(outline: list[Section], overall: Counter, chinese: bool) -> None:
    """Two sections titled alike get the next-best phrase of the later one."""
    seen: set[str] = set()
    for section in outline:
        if section.title.casefold() in seen:
            options = key_phrases(section.points, overall, chinese=chinese)
            section.title = next(
                (_as_title(p, chinese) for p in options if p.casefold() not in seen),
                section.title,
            )
        seen.add(section.title.casefold())


def key_phrase(points: list[str], overall: Counter, *, chinese: bool, title: bool = True) -> str:
    """The phrase that names these sentences best: the noun phrase (English) or the two- to
    four-character word (Chinese) their terms repeat most, also across the whole source."""
    phrases = key_phrases(points, overall, chinese=chinese)
    if not phrases:
        return points[0][: 8 if chinese else 40].rstrip(" ,;:") if points else ""
    return _as_title(phrases[0], chinese) if title else phrases[0]


def key_phrases(points: list[str], overall: Counter, *, chinese: bool) -> list[str]:
    """Candidate phrases of the sentences, best first (ties: the earliest)."""
    if chinese:
        return _chinese_phrases(points, overall)
    local = Counter(_lemma(w) for p in points for w in _words(p) if w.lower() not in STOPWORDS)
    flat = " ".join(" ".join(points).lower().split())
    seen: dict[str, tuple[float, int, str]] = {}
    for position, found in enumerate(p for point in points for p in noun_phrases(point)):
        phrase, opening = found
        words = phrase.split()
        # A sentence's first words may run into its verb ("Workers fan"): keep more than the
        # first word only when the phrase recurs ("Solar power has ... too much solar power").
        if opening and len(words) > 1 and flat.count(phrase.lower()) < 2:
            phrase, words = words[0], words[:1]
        lemmas = [_lemma(w) for w in words]
        head = lemmas[-1]
        score = (
            2.0 * local[head]
            + sum(local[w] for w in lemmas) / len(lemmas)
            + 0.5 * overall[head]
            + sum(overall[w] for w in lemmas) / (4 * len(lemmas))
            + (0.8 if len(words) > 1 else 0.0)
        )
        key = phrase.lower()
        if key not in seen or seen[key][0] < score:
            seen[key] = (score, -position if key not in seen else seen[key][1], phrase)
    ranked = sorted(seen.values(), key=lambda item: (-item[0], -item[1]))
    return [phrase for _, _, phrase in ranked]


def noun_phrases(sentence: str) -> list[tuple[str, bool]]:
    """Runs of up to three content words after a determiner or preposition ("the waggle dance"),
    or opening a sentence ("Solar power has..."), each with whether it opens the sentence: a
    small chunker good enough for titles."""
    tokens = TOKEN.findall(sentence)  # punctuation is a token too: no phrase runs across it
    found = []
    for index, token in enumerate(tokens):
        if index and token.lower() not in PHRASE_OPENERS:
            continue
        start = index if index == 0 and token.lower() not in STOPWORDS else index + 1
        words: list[str] = []
        for word in tokens[start : start + 3]:
            lower = word.lower()
            if lower in STOPWORDS or lower in VERBISH or not word[0].isalpha() or len(word) < 2:
                break
            if words and lower.endswith(("ed", "ing", "ly")):
                break
            words.append(word)
        if words and not (len(words) == 1 and words[0].lower().endswith(("ed", "ly"))):
            if start == 0 and not words[0].isupper():
                words[0] = words[0][0].lower() + words[0][1:]
            found.append((" ".join(words), start == 0))
    return found


def _chinese_phrases(points: list[str], overall: Counter) -> list[str]:
    counts: Counter = Counter()
    first: dict[str, int] = {}
    for point in points:
        for run in re.findall(r"[\u4e00-\u9fff]+", point):
            for size in (2, 3, 4):
                for start in range(len(run) - size + 1):
                    gram = run[start : start + size]
                    if not set(gram) & CHINESE_FUNCTION_CHARS:
                        counts[gram] += 1
                        first.setdefault(gram, len(first))
    # Longer words only when they recur: a one-off three-character run crosses word boundaries.
    kept = {g: n for g, n in counts.items() if len(g) == 2 or n >= 2}
    score = {g: n * (1 + 0.15 * len(g)) + 0.3 * overall[g[:2]] for g, n in kept.items()}
    return sorted(score, key=lambda g: (-score[g], first[g]))


def _words(text: str) -> list[str]:
    return WORD.findall(text)


def _lemma(word: str) -> str:
    word = word.lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _as_title(phrase: str, chinese: bool) -> str:
    return phrase if chinese else phrase[:1].upper() + phrase[1:]


def _scene(sentence: str, character: Character, setting: Setting, rng: random.Random) -> Scene:
    name = str(character.get("name") or "Narrator")
    # The setting's words come first and alone: the character's looks ("a lighthouse keeper")
    # must not move the scene to the sea; the portrait shows them.
    description = f"{setting.words()}: {rng.choice(SHOTS)} of {name}. {sentence}"
    return Scene(character=name, text=sentence, description=description)
