"""50,000 words of sources: bounded text work, and audio kept on disk, never all in memory."""

from __future__ import annotations

import tracemalloc
import wave

import pytest

from engines.text import Line
from podcast import steps
from podcast.models import EpisodeProfile, PodcastRun, Source, SpeakerProfile
from runs import artifacts, lifecycle
from runs.models import TERMINAL, RunStatus
from runs.tests.helpers import wait_for

from .conftest import many_sentences

RUN_ON_WORDS = 15_000


def fifty_thousand_words(owner) -> list[Source]:
    """Four long sources, one of them a single run-on "sentence" with no full stop at all."""
    sources = [
        Source.objects.create(owner=owner, title=f"Part {n}", content=many_sentences(1200))
        for n in range(3)
    ]
    run_on = " ".join(f"word{i % 500}" for i in range(RUN_ON_WORDS))
    sources.append(Source.objects.create(owner=owner, title="Run-on", content=run_on))
    assert sum(source.word_count for source in sources) >= 50_000
    return sources


def make_run(owner, sources, episode_profile: str, speaker_profile: str = "default") -> PodcastRun:
    run = PodcastRun.objects.create(
        owner=owner,
        episode_profile=EpisodeProfile.objects.get(slug=episode_profile),
        speaker_profile=SpeakerProfile.objects.get(slug=speaker_profile),
        episode_name="Scale",
    )
    run.sources.set(sources)
    return run


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.django_db
def test_outline_and_transcript_of_fifty_thousand_words_stay_episode_sized(user, profiles):
    run = make_run(user, fifty_thousand_words(user), "default")
    profile = run.episode_profile

    outline = steps.write_outline(steps.read_sources(run), profile)
    lines = steps.write_transcript(run, outline, steps.speakers_of(run))

    assert len(outline) == profile.segments
    longest_point = max(words(point) for section in outline for point in section.points)
    assert longest_point <= steps.POINT_MAX_WORDS + 1  # the run-on source was clipped
    framing = words(lines[0].text) + words(lines[-1].text)
    # The episode follows the profile's length, not the sources': at most one line over.
    assert sum(words(line.text) for line in lines) <= profile.target_words + framing + 70
    assert max(words(line.text) for line in lines) <= steps.POINT_MAX_WORDS + 10


@pytest.mark.django_db
def test_speech_is_written_to_disk_line_by_line_not_held_in_memory(user, source, profiles):
    run = lifecycle.claim(PodcastRun, make_run(user, [source], "default").pk)
    ctx = lifecycle.RunContext(run)
    speakers = steps.speakers_of(run)
    sentence = "Bees keep the brood warm and the honey dry through the longest winter nights. "
    lines = [Line(speakers[i % 2].name, sentence * 2) for i in range(12)]
    try:
        tracemalloc.start()
        wavs = steps.speak_lines(run, ctx, lines, speakers)
        joined = ctx.tmp_dir / "episode.wav"
        steps.audio.join_lines(wavs, gap_seconds=steps.GAP_SECONDS, out_path=joined)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        audio_bytes = sum(wav.stat().st_size for wav in wavs)
        # Spoken in the attempt's own folder, and saved to the storage named by run id, each
        # behind its checkpoint: a retry (on any machine) reuses them.
        assert [wav.parent for wav in wavs] == [ctx.tmp_dir] * 12
        assert run.checkpoints == {
            f"speech {n}": f"podcasts/{run.pk}/line-{n - 1:05d}.wav" for n in range(1, 13)
        }
        assert all(artifacts.exists(name) for name in run.checkpoints.values())
        with wave.open(str(joined)) as episode:
            assert episode.getnframes() * episode.getsampwidth() >= audio_bytes * 0.95
        # Python held a small fraction of the audio at any moment: samples went straight to disk.
        assert peak < audio_bytes / 4, (peak, audio_bytes)
        assert PodcastRun.objects.get(pk=run.pk).stage == "speech 12/12"
    finally:
        ctx.remove_tmp()
        steps.remove_line_files(run)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_an_episode_from_fifty_thousand_words_of_sources_completes(user, short_profile, profiles):
    run = make_run(user, fifty_thousand_words(user), "short")
    assert lifecycle.dispatch(run)

    wait_for(lambda: PodcastRun.objects.get(pk=run.pk).status in TERMINAL, timeout=120)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.message
    transcript = run.result.transcript
    assert sum(words(line["text"]) for line in transcript) < 300
    assert run.result.duration_seconds == pytest.approx(transcript[-1]["end"], abs=0.3)
