"""Source languages are detected by script and common words; voices follow them."""

from __future__ import annotations

import pytest

from engines import language
from engines.tests.test_text import CHINESE, ENGLISH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CHINESE, "zh"),
        (ENGLISH, "en"),
        ("蜜蜂 (Apis mellifera) 用摇摆舞告诉同伴花在哪里。", "zh"),
        ("ミツバチは花の場所を仲間に伝える。", "ja"),
        ("꿀벌은 춤으로 꽃의 위치를 알린다.", "ko"),
        ("Пчёлы танцуют, чтобы показать цветы.", "ru"),
        ("Die Bienen und die Blumen: das ist nicht nur eine Geschichte von der Natur.", "de"),
        ("Les abeilles et les fleurs: une histoire de la nature pour les enfants.", "fr"),
        ("12345 ---", ""),
    ],
)
def test_detect(text: str, expected: str) -> None:
    assert language.detect(text) == expected


def test_voices_follow_the_language_and_keep_their_variant() -> None:
    assert language.voice_for("en-us+m3", "zh") == "cmn+m3"
    assert language.voice_for("en-gb+f3", "cmn") == "cmn+f3"
    assert language.voice_for("cmn+f2", "zh") == "cmn+f2"  # a pinned Mandarin voice stays
    assert language.voice_for("yue", "zh") == "yue"  # Cantonese reads Chinese too
    assert language.voice_for("cmn", "en") == "en-us"
    assert language.voice_for("en-gb", "en") == "en-gb"
    assert language.voice_for("de", "") == "de"


def test_the_episode_language_is_the_sources_else_the_profiles() -> None:
    assert language.episode_language(CHINESE, "en") == "zh"
    assert language.episode_language(ENGLISH, "cmn") == "en"
    assert language.episode_language("", "cmn") == "zh"
