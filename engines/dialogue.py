"""The offline writer's conversation: a host who introduces, asks and links, guests who explain
with the source's own sentences, and speakers who answer each other.

Shape of an episode (`write`):
    host    intro (+ the briefing's focus) and who is joining
    guest   a short greeting back
    per section:
      host  a question on the section's key phrase, linked to the one before
      guest the section's first point, in the source's words
      host  a short reaction and a follow-up on the next point's key phrase   (as the length allows)
      guest that point
    host    the recap: one line naming the sections
    host    the outro

The length follows `target_words`: every section gets its first point, then more points are
added round the sections while the words allow; nothing is padded or said twice. The phrasing is
picked by a generator seeded from the outline, so the same outline always gives the same
episode (a retried run included).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engines.interfaces import Line, Section, Speaker

GLUE_WORDS = 9  # a question or reaction around each point, in words


@dataclass(frozen=True)
class Phrases:
    joined: tuple[str, ...]  # {names}
    greet: tuple[str, ...]  # {host}
    first: tuple[str, ...]  # {title} {guest}
    next: tuple[str, ...]  # {title} {previous} {guest}
    last: tuple[str, ...]  # {title} {previous} {guest}
    follow: tuple[str, ...]  # {phrase}
    react: tuple[str, ...]
    recap: str  # {titles}
    focus: str  # {focus}
    bye: str
    space: str
    and_: str
    comma: str


ENGLISH = Phrases(
    joined=("I'm joined by {names}.", "With me today: {names}."),
    greet=("Thanks for having me, {host}.", "Glad to be here, {host}.", "Happy to be here."),
    first=(
        "Let's start with {title}. {guest}, what should we know?",
        "First up: {title}. {guest}, where do we begin?",
        "{guest}, let's open with {title}. What's the core idea?",
    ),
    next=(
        "From {previous} to {title}. {guest}, how does that work?",
        "That brings us to {title}. {guest}, what's the story there?",
        "Let's turn to {title}. {guest}, what stands out?",
        "Next, {title}. {guest}, what did you find?",
        "Moving on from {previous}: what about {title}, {guest}?",
    ),
    last=(
        "Finally, {title}. {guest}, what should listeners take away?",
        "One last topic: {title}. {guest}, what matters most?",
    ),
    follow=(
        "And what about {phrase}?",
        "Where does {phrase} come in?",
        "Can you tell us more about {phrase}?",
        "How does {phrase} fit in?",
        "What's the role of {phrase}?",
        "And {phrase}?",
    ),
    react=(
        "Interesting.",
        "That's striking.",
        "I didn't know that.",
        "Right.",
        "That makes sense.",
        "Fascinating.",
        "Good point.",
        "Huh, really?",
    ),
    recap="So, in short, we covered {titles}.",
    focus="Today's focus: {focus}.",
    bye="Thanks for listening.",
    space=" ",
    and_=" and ",
    comma=", ",
)
CHINESE = Phrases(
    joined=("今天和我一起的是{names}。", "今天的嘉宾是{names}。"),
    greet=("谢谢{host}的邀请。", "很高兴来到这里。"),
    first=(
        "我们先从{title}说起。{guest}，这方面该了解些什么？",  # noqa: RUF001
        "第一个话题是{title}。{guest}，从哪里讲起？",  # noqa: RUF001
    ),
    next=(
        "说完{previous}，再来看{title}。{guest}，这是怎么回事？",  # noqa: RUF001
        "接下来聊聊{title}。{guest}，有什么值得注意的？",  # noqa: RUF001
        "我们转到{title}。{guest}，你怎么看？",  # noqa: RUF001
    ),
    last=(
        "最后说说{title}。{guest}，听众最该记住什么？",  # noqa: RUF001
        "还有最后一个话题：{title}。{guest}，你怎么看？",  # noqa: RUF001
    ),
    follow=(
        "那{phrase}呢？",  # noqa: RUF001
        "{phrase}又是怎么回事？",  # noqa: RUF001
        "能多讲讲{phrase}吗？",  # noqa: RUF001
        "{phrase}起什么作用？",  # noqa: RUF001
    ),
    react=("原来如此。", "真有意思。", "这个我以前还不知道。", "有道理。", "确实。", "没想到。"),
    recap="简单回顾一下，今天我们聊了{titles}。",  # noqa: RUF001
    focus="今天的重点：{focus}。",  # noqa: RUF001
    bye="感谢收听，下期再见。",  # noqa: RUF001
    space="",
    and_="和",
    comma="、",
)


def write(
    outline: list[Section],
    speakers: list[Speaker],
    *,
    intro: str,
    outro: str,
    briefing_suffix: str,
    target_words: int,
    chinese: bool,
    key_phrase: Callable[[str], str],
    count_words: Callable[[str], int],
) -> list[Line]:
    """The episode's lines; `key_phrase(point)` names a point, `count_words` measures a line."""
    words = CHINESE if chinese else ENGLISH
    rng = random.Random(_seed(outline, speakers))
    host, guests = speakers[0], speakers[1:]
    opening = [intro.strip()]
    if briefing_suffix.strip():
        opening.append(words.focus.format(focus=briefing_suffix.strip().rstrip(".。")))
    opening.append(rng.choice(words.joined).format(names=_names(guests, words)))
    lines = [Line(host.name, words.space.join(p for p in opening if p))]
    lines.append(Line(guests[0].name, rng.choice(words.greet).format(host=host.name)))

    sections = [s for s in outline if s.points]
    fixed = sum(count_words(line.text) for line in lines) + count_words(outro) + 12
    plan = _plan(sections, max(target_words - fixed, 0), count_words)
    reactions = _shuffled(words.react, rng)
    follows = _shuffled(words.follow, rng)
    for number, (section, count) in enumerate(zip(sections, plan, strict=True)):
        guest = guests[number % len(guests)]
        lines.append(Line(host.name, _question(words, rng, sections, number, guest.name)))
        lines.append(Line(guest.name, section.points[0]))
        for point in section.points[1:count]:
            # Another guest, when there is one, picks the thread up now and then.
            answerer = guests[(number + len(lines)) % len(guests)] if len(guests) > 1 else guest
            follow = next(follows).format(phrase=key_phrase(point))
            lines.append(Line(host.name, f"{next(reactions)}{words.space}{follow}"))
            lines.append(Line(answerer.name, point))
    titles = [s.title for s in sections]
    if len(titles) > 1:
        lines.append(Line(host.name, words.recap.format(titles=_listed(titles, words))))
    lines.append(Line(host.name, outro.strip() or words.bye))
    return _without_repeats(lines)


def _plan(sections: list[Section], budget: int, count_words: Callable[[str], int]) -> list[int]:
    """How many points of each section fit: the first of each, then more round the sections."""
    plan = [1] * len(sections)
    used = sum(count_words(s.points[0]) + GLUE_WORDS for s in sections)
    depth = 1
    while any(depth < len(s.points) for s in sections):
        for number, section in enumerate(sections):
            if depth < len(section.points) and plan[number] == depth:
                cost = count_words(section.points[depth]) + GLUE_WORDS
                if used + cost > budget:
                    return plan
                plan[number] += 1
                used += cost
        depth += 1
    return plan


def _question(words: Phrases, rng: random.Random, sections: list[Section], number: int,
              guest: str) -> str:  # fmt: skip
    title = sections[number].title
    if number == 0:
        template = rng.choice(words.first)
    elif number == len(sections) - 1:
        template = rng.choice(words.last)
    else:
        template = words.next[(number - 1 + rng.randrange(len(words.next))) % len(words.next)]
    previous = sections[number - 1].title if number else ""
    return template.format(title=title, previous=previous, guest=guest)


def _shuffled(options: tuple[str, ...], rng: random.Random) -> Iterator[str]:
    """Every option once in a random order, then again in another, and so on."""
    while True:
        order = list(options)
        rng.shuffle(order)
        yield from order


def _names(guests: list[Speaker], words: Phrases) -> str:
    english = words is ENGLISH
    return _listed([f"{g.name}, our {g.role}" if g.role and english else g.name for g in guests],
                   words)  # fmt: skip


def _listed(items: list[str], words: Phrases) -> str:
    if len(items) < 2:
        return "".join(items)
    return words.comma.join(items[:-1]) + words.and_ + items[-1]


def _without_repeats(lines: list[Line]) -> list[Line]:
    seen: set[str] = set()
    kept = []
    for line in lines:
        key = " ".join(line.text.split()).casefold()
        if key and key not in seen:
            seen.add(key)
            kept.append(line)
    return kept


def _seed(outline: list[Section], speakers: list[Speaker]) -> str:
    material = "\x1f".join(
        [*(s.name for s in speakers), *(f"{s.title}\x1e{'|'.join(s.points)}" for s in outline)]
    )
    return hashlib.sha256(material.encode()).hexdigest()
