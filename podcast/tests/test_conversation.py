"""A long episode through the real worker: a conversation, not a template."""

from __future__ import annotations

import pytest

from engines.text import count_words
from podcast.models import EpisodeProfile, Source
from runs.models import TERMINAL, RunStatus

from .conftest import many_sentences
from .test_episode import poll, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_a_long_episode_never_repeats_a_line_and_follows_the_profiles_length(api, user, profiles):
    EpisodeProfile.objects.create(slug="long", name="Long", segments=4, target_words=900)
    source = Source.objects.create(owner=user, title="Hives", content=many_sentences(160))
    accepted = submit(api, episode_profile="long", speaker_profile="default",
                      episode_name="Hive life", source_ids=[source.pk])  # fmt: skip
    run = poll(api, accepted["url"], *TERMINAL, timeout=240)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    result = run["result"]
    texts = [line["text"] for line in result["transcript"]]
    assert len(set(texts)) == len(texts)  # no line is said twice
    assert sum("in short" in text for text in texts) == 1  # a one-line recap
    assert 650 <= count_words(" ".join(texts)) <= 1100  # the profile's 900 words, roughly
    # Host and guest take turns; every section is asked about by its title.
    speakers = [line["speaker"] for line in result["transcript"]]
    assert speakers[:4] == ["Alex", "Sam", "Alex", "Sam"]
    for section in result["outline"]:
        assert any(section["title"] in text and text.endswith("?") for text in texts)
    assert all(line["voice"] in ("en-us+m3", "en-gb+f3") for line in result["transcript"])
