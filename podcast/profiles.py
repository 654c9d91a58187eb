"""The profiles every installation starts with: `default`, `two_hosts` and `mandarin`, of both
kinds. `default` and `two_hosts` speak any source's language (their voices follow it, see
`podcast.voices`); `mandarin` pins Mandarin voices and Chinese greetings."""

from __future__ import annotations

from typing import Any

from django.apps import apps as installed_apps

EPISODE_PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "name": "Default: a host walks a guest through the sources",
        "outline_style": "key_points",
        "segments": 3,
        "target_words": 400,
        "intro": "Welcome to {episode}. Today we go through what our sources have to say.",
        "outro": "That was {episode}. Thanks for listening, and see you next time.",
        "language": "en",
    },
    "two_hosts": {
        "name": "Two hosts: a conversation in questions and answers",
        "outline_style": "questions",
        "segments": 4,
        "target_words": 600,
        "intro": "Hello and welcome to {episode}, where two hosts talk through the material.",
        "outro": "And that brings {episode} to a close. Goodbye from both of us.",
        "language": "en",
    },
    "mandarin": {
        "name": "普通话：主持人与嘉宾 (Mandarin: a host and a guest)",  # noqa: RUF001
        "outline_style": "key_points",
        "segments": 3,
        "target_words": 600,  # Chinese characters: about two minutes of speech
        "intro": "欢迎收听{episode}。今天我们一起聊聊资料里的内容。",
        "outro": "以上就是{episode}的全部内容。感谢收听，我们下期再见。",  # noqa: RUF001
        "language": "zh",
    },
}

SPEAKER_PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "name": "Default: host and expert",
        "speakers": [
            {"name": "Alex", "role": "host", "voice": "en-us+m3", "pitch": 40, "rate": 170},
            {"name": "Sam", "role": "expert", "voice": "en-gb+f3", "pitch": 65, "rate": 160},
        ],
    },
    "two_hosts": {
        "name": "Two hosts",
        "speakers": [
            {"name": "Maya", "role": "host", "voice": "en-us+f2", "pitch": 60, "rate": 175},
            {"name": "Leo", "role": "co-host", "voice": "en-gb+m1", "pitch": 35, "rate": 165},
        ],
    },
    "mandarin": {
        "name": "普通话主持 (Mandarin hosts)",
        "speakers": [
            {"name": "小林", "role": "主持人", "voice": "cmn+m3", "pitch": 40, "rate": 170},
            {"name": "小美", "role": "嘉宾", "voice": "cmn+f3", "pitch": 65, "rate": 165},
        ],
    },
}


def seed_profiles(apps=installed_apps) -> None:
    """Create the built-in profiles that are missing; leave existing ones (maybe edited) alone.

    Takes an app registry so the data migration can pass its historical models.
    """
    episode_model = apps.get_model("podcast", "EpisodeProfile")
    speaker_profile_model = apps.get_model("podcast", "SpeakerProfile")
    speaker_model = apps.get_model("podcast", "Speaker")
    for slug, fields in EPISODE_PROFILES.items():
        episode_model.objects.get_or_create(slug=slug, defaults=fields)
    for slug, spec in SPEAKER_PROFILES.items():
        profile, created = speaker_profile_model.objects.get_or_create(
            slug=slug, defaults={"name": spec["name"]}
        )
        if created:
            for position, speaker in enumerate(spec["speakers"]):
                speaker_model.objects.create(profile=profile, position=position, **speaker)
