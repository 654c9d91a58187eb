"""The offline writer sounds like a conversation: asks, answers, links; never repeats."""

from __future__ import annotations

import itertools

from engines.interfaces import Speaker
from engines.tests.test_text import CHINESE, ENGLISH, LONG_ENGLISH
from engines.text import count_words, key_phrase, write_outline, write_transcript

HOSTS = [Speaker("Alex", "host", "en-us"), Speaker("Sam", "expert", "en-gb")]
BEES = (
    "Honeybees keep their hive at about thirty-five degrees while the brood develops. "
    "A forager tells her sisters where flowers are with the waggle dance. The angle of the "
    "waggle dance points to the food. Bees make honey by evaporating nectar."
)


def episode(source: str = ENGLISH, speakers=HOSTS, target: int = 300, **outline) -> list:
    sections = write_outline([source], **{"sections": 3, "language": "en", **outline})
    return write_transcript(sections, speakers, intro="Welcome to the show.", outro="Goodbye.",
                            briefing_suffix="", target_words=target, language="en")  # fmt: skip


def test_titles_are_key_phrases() -> None:
    assert key_phrase([BEES], __import__("collections").Counter(), chinese=False) == "Waggle dance"
    titles = [s.title for s in write_outline([ENGLISH], sections=3, language="en")]
    assert titles[0] == "Solar power" and len(set(titles)) == 3


def test_the_host_asks_and_the_guest_answers_with_the_sources_sentences() -> None:
    outline = write_outline([ENGLISH], sections=3, language="en")
    lines = episode()
    assert lines[0].speaker == "Alex" and "Sam, our expert" in lines[0].text  # introduces
    assert lines[1].speaker == "Sam"  # greets back
    points = {p for s in outline for p in s.points}
    for question, answer in itertools.pairwise(lines[2:-2]):
        if answer.text in points:  # every point is an answer to the host's question
            assert question.speaker == "Alex" and question.text.endswith("?")
            assert answer.speaker == "Sam"
    # Each section's question names its title; later ones link on from the last.
    asked = [line.text for line in lines if line.speaker == "Alex" and line.text.endswith("?")]
    for section in outline:
        assert any(section.title in text for text in asked), section.title
    assert {p for p in points} <= {line.text for line in lines}
    assert all(a.speaker != b.speaker for a, b in itertools.pairwise(lines[:-2]))


def test_the_recap_is_one_line_and_nothing_is_said_twice() -> None:
    lines = episode(LONG_ENGLISH, target=3000, points=12, sections=4)
    texts = [line.text for line in lines]
    assert len(set(texts)) == len(texts)
    assert sum("in short" in text for text in texts) == 1
    assert count_words(" ".join(texts)) > 500


def test_the_length_follows_the_target_within_the_material() -> None:
    lengths = [count_words(" ".join(line.text for line in episode(LONG_ENGLISH, target=t,
                                                                  points=12)))
               for t in (150, 400, 800)]  # fmt: skip
    assert lengths[0] < lengths[1] < lengths[2]
    assert 100 <= lengths[0] <= 260 and 300 <= lengths[1] <= 520


def test_the_same_outline_gives_the_same_episode() -> None:
    assert episode() == episode()


def test_three_speakers_all_take_part() -> None:
    cast = [*HOSTS, Speaker("Kim", "reporter", "en-us+f3")]
    lines = episode(LONG_ENGLISH, speakers=cast, target=800, points=6)
    assert {line.speaker for line in lines} == {"Alex", "Sam", "Kim"}
    assert "Sam, our expert and Kim, our reporter" in lines[0].text


def test_a_chinese_episode_is_a_conversation_in_chinese() -> None:
    outline = write_outline([CHINESE], sections=2, language="zh")
    lines = write_transcript(outline, HOSTS, intro="欢迎收听。", outro="再见。",
                             briefing_suffix="", target_words=200, language="zh")  # fmt: skip
    assert lines[1].speaker == "Sam"
    assert sum(line.text.endswith("\uff1f") for line in lines) >= 2  # the host asks
    assert len({line.text for line in lines}) == len(lines)
    assert "回顾" in lines[-2].text
