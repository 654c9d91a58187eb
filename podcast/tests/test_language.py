"""Language end to end: a Chinese source with the seeded profiles is spoken in Mandarin."""

from __future__ import annotations

import pytest

from engines.media import probe
from engines.text import count_words
from podcast.models import SpeakerProfile
from runs.models import TERMINAL, RunStatus

from .test_episode import download, poll, submit

pytestmark = [pytest.mark.django_db(transaction=True)]

# Chinese punctuation is the point of this text, hence the noqa.
CHINESE_SOURCE = (
    "蜜蜂是一种群居昆虫，一个蜂群里有蜂王、工蜂和雄蜂。"  # noqa: RUF001
    "工蜂用摇摆舞告诉同伴花在哪里。舞蹈的角度指向食物的方向，舞蹈的长度表示距离。"  # noqa: RUF001
    "蜜蜂把花蜜里的水分蒸发掉，就酿成了蜂蜜。用蜂蜡封好的蜂蜜可以保存很多年。"  # noqa: RUF001
    "冬天，蜜蜂挤在一起取暖，蜂群的中心温度保持在三十度以上。"  # noqa: RUF001
    "没有蜜蜂授粉，很多水果和蔬菜都会减产。"  # noqa: RUF001
)


def test_chinese_word_counts_count_characters(api):
    reply = api.post("/api/sources/", {"title": "蜜蜂", "content": CHINESE_SOURCE}, format="json")
    assert reply.status_code == 201, reply.json()
    assert reply.json()["word_count"] == count_words(CHINESE_SOURCE) > 100


@pytest.mark.usefixtures("profiles")
def test_a_mandarin_profile_is_seeded():
    speakers = SpeakerProfile.objects.get(slug="mandarin").speakers.all()
    assert [s.voice.split("+")[0] for s in speakers] == ["cmn", "cmn"]


@pytest.mark.usefixtures("celery_worker", "profiles")
@pytest.mark.parametrize("speaker_profile", ["default", "two_hosts"])
def test_a_chinese_source_with_the_seeded_english_profiles_speaks_mandarin(api, speaker_profile):
    source = api.post("/api/sources/", {"title": "蜜蜂", "content": CHINESE_SOURCE}, format="json")
    accepted = submit(api, episode_profile="default", speaker_profile=speaker_profile,
                      episode_name="蜜蜂的一年", source_ids=[source.json()["id"]])  # fmt: skip
    run = poll(api, accepted["url"], *TERMINAL, timeout=180)

    assert run["status"] == RunStatus.SUCCEEDED, run["message"]
    transcript = run["result"]["transcript"]
    # Every line is spoken by a Mandarin voice, each speaker keeping a voice of their own.
    assert all(line["voice"].split("+")[0] == "cmn" for line in transcript), transcript
    voices = {line["speaker"]: line["voice"] for line in transcript}
    assert len(set(voices.values())) == len(voices) == 2
    # The English profile's greeting gave way to a Chinese one; nothing is said twice.
    assert transcript[0]["text"].startswith("欢迎收听蜜蜂的一年。")
    texts = [line["text"] for line in transcript]
    assert len(set(texts)) == len(texts)
    # Mandarin speech takes a few characters a second; letter-by-letter English took minutes.
    characters = sum(count_words(text) for text in texts)
    seconds = probe(download(api, run["result"]["audio_url"])).duration_seconds
    assert characters / 8 < seconds < characters / 2.5, (characters, seconds)
