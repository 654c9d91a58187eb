"""The admin pages for podcasts: the run page plays the audio and shows the transcript."""

from __future__ import annotations

import pytest
from django.test import Client

from podcast.models import EpisodeProfile, Speaker, SpeakerProfile

from .test_api import finished_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("short_profile", "contrast_speakers")]

TRANSCRIPT = [
    {
        "speaker": "Ann",
        "voice": "en-gb+f3",
        "text": "Welcome <b>all</b>.",
        "start": 0.0,
        "end": 1.2,
    },
    {"speaker": "Bob", "voice": "en-us+m3", "text": "Glad to be here.", "start": 1.5, "end": 2.6},
]


@pytest.fixture
def admin_client(django_user_model) -> Client:
    django_user_model.objects.create_superuser("root", password="a-long-password-9")
    client = Client()
    client.login(username="root", password="a-long-password-9")
    return client


def test_the_run_page_has_a_player_from_the_authenticated_audio_view_and_the_transcript(
    admin_client, user
):
    run = finished_run(user)
    run.result.transcript = TRANSCRIPT
    run.result.outline = [{"title": "Greetings", "points": ["Say hello."]}]
    run.result.save()

    page = admin_client.get(f"/admin/podcast/podcastrun/{run.pk}/change/")
    html = page.content.decode()

    assert page.status_code == 200
    audio_src = f"/api/podcasts/{run.pk}/audio/"
    assert f'<audio controls preload="metadata" src="{audio_src}">' in html
    assert "Glad to be here." in html and "Greetings" in html
    assert "Welcome &lt;b&gt;all&lt;/b&gt;." in html  # transcript text is escaped
    # The player's source answers the admin's session, not only API tokens.
    assert admin_client.get(audio_src).status_code == 200
    assert Client().get(audio_src).status_code == 401


def test_the_run_list_shows_status_progress_and_stage(admin_client, user):
    finished_run(user)
    html = admin_client.get("/admin/podcast/podcastrun/").content.decode()
    assert "Succeeded" in html and "<progress" in html and "Done" in html


def test_profiles_and_sources_are_editable_in_the_admin(admin_client):
    for url in (
        "/admin/podcast/episodeprofile/add/",
        "/admin/podcast/speakerprofile/add/",
        "/admin/podcast/source/add/",
    ):
        assert admin_client.get(url).status_code == 200, url
    profile = EpisodeProfile.objects.get(slug="short")
    form = {
        "slug": "short",
        "name": "Shorter",
        "outline_style": "narrative",
        "segments": 1,
        "target_words": 60,
        "intro": "",
        "outro": "",
        "language": "en",
    }
    reply = admin_client.post(f"/admin/podcast/episodeprofile/{profile.pk}/change/", form)
    assert reply.status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.segments) == ("Shorter", 1)


def test_the_speaker_inline_refuses_an_unknown_voice(admin_client):
    profile = SpeakerProfile.objects.get(slug="contrast")
    speakers = list(profile.speakers.all())
    form = {"slug": "contrast", "name": "Low and high"}
    form.update(
        {
            "speakers-TOTAL_FORMS": "2",
            "speakers-INITIAL_FORMS": "2",
            "speakers-MIN_NUM_FORMS": "2",
            "speakers-MAX_NUM_FORMS": "1000",
        }
    )
    for index, speaker in enumerate(speakers):
        prefix = f"speakers-{index}-"
        form.update({
            prefix + "id": speaker.pk, prefix + "profile": profile.pk,
            prefix + "position": index, prefix + "name": speaker.name, prefix + "role": "",
            prefix + "voice": "klingon" if index else speaker.voice,
            prefix + "pitch": speaker.pitch, prefix + "rate": speaker.rate,
        })  # fmt: skip
    reply = admin_client.post(f"/admin/podcast/speakerprofile/{profile.pk}/change/", form)

    assert reply.status_code == 200  # the form again, with the error
    assert "unknown voice" in reply.content.decode()
    assert Speaker.objects.get(pk=speakers[1].pk).voice == speakers[1].voice
