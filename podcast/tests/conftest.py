"""Podcast fixtures: the seeded profiles, a short test profile, sources and API helpers."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from podcast.models import EpisodeProfile, Source, Speaker, SpeakerProfile
from podcast.profiles import seed_profiles

SHORT_SOURCE = """\
Honeybees keep their hive at about thirty-five degrees while the brood develops. Workers fan their
wings to cool the comb and cluster together to warm it when the nights turn cold.

A forager tells her sisters where flowers are with the waggle dance. The angle of the dance points
to the food relative to the sun, and its length says how far away the flowers are.

Bees make honey by evaporating nectar until it holds less than a fifth water. Sealed under wax,
honey keeps for years because microbes cannot grow in it.
"""


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Each test makes two or three users; the production hasher would take most of its time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def many_sentences(count: int) -> str:
    """A source of `count` different sentences, for episodes (and outlines) of some length."""
    subjects = ("The hive", "A forager", "The queen", "Each drone", "A nurse bee", "The colony")
    verbs = ("visits", "guards", "cleans", "warms", "maps", "feeds")
    things = ("the clover field", "the brood comb", "the north entrance", "the wax cells")
    return " ".join(
        f"{subjects[i % 6]} number {i} {verbs[i // 6 % 6]} {things[i % 4]} before noon."
        for i in range(count)
    )


@pytest.fixture
def profiles():
    """The built-in profiles (transactional tests truncate what the data migration created)."""
    seed_profiles()


@pytest.fixture
def short_profile(profiles) -> EpisodeProfile:
    """An episode of a few lines, so tests make seconds of audio, not minutes."""
    return EpisodeProfile.objects.create(
        slug="short",
        name="Short test episode",
        segments=2,
        target_words=50,
        intro="This is {episode}.",
        outro="Bye from {episode}.",
        language="en",
    )


@pytest.fixture
def contrast_speakers(profiles) -> SpeakerProfile:
    """A low male and a high female voice: easy to tell apart in the audio."""
    profile = SpeakerProfile.objects.create(slug="contrast", name="Low and high")
    Speaker.objects.create(profile=profile, position=0, name="Ann", role="host",
                           voice="en-gb+f3", pitch=85, rate=175)  # fmt: skip
    Speaker.objects.create(profile=profile, position=1, name="Bob", role="guest",
                           voice="en-us+m3", pitch=15, rate=175)  # fmt: skip
    return profile


@pytest.fixture
def source(user) -> Source:
    return Source.objects.create(owner=user, title="Bees", content=SHORT_SOURCE)


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    staff = django_user_model.objects.create_user(
        "carol", password="a-long-password-3", is_staff=True
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return client


@pytest.fixture
def other_api(other_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    return client


def episode_request(source_ids, **overrides) -> dict:
    body = {
        "episode_profile": "short",
        "speaker_profile": "contrast",
        "episode_name": "Bees at work",
        "source_ids": source_ids,
        "briefing_suffix": "the waggle dance",
    }
    body.update(overrides)
    return body
