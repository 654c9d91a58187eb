"""The podcast pipeline: sources -> outline -> transcript -> speech per line -> MP3 -> result.

Each step reports progress through `ctx.step`, keeps its intermediate files in the run's temporary
folder and can run again from the start: the result row and the MP3 (named by run id) are replaced.
Audio never sits in memory whole: lines are WAV files on disk and ffmpeg streams them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from django.conf import settings

from engines import audio, get_speech_engine, get_text_engine, media
from engines.errors import EngineError
from engines.text import Line, Section, Speaker

from . import markdown, styles, voices
from .models import PodcastResult, PodcastRun

logger = logging.getLogger(__name__)

GAP_SECONDS = 0.35  # a breath between turns
# A source without full stops would make one giant "sentence"; a spoken point stays short.
POINT_MAX_WORDS = 60
POINT_MAX_CHARS = 400  # Chinese has no spaces: bound it by characters too
ARTIST = "Media runs podcast"
SPEECH_PROGRESS = (25, 80)  # speech is most of the time, so most of the bar


def generate(run: PodcastRun, ctx) -> None:
    """Every step of one episode, in order."""
    started = time.monotonic()
    ctx.step(2, "reading sources")
    texts = read_sources(run)
    profile = run.episode_profile
    speakers = speakers_of(run)
    ctx.step(10, "writing outline")
    outline = styles.shape_outline(write_outline(texts, profile), profile.outline_style)
    ctx.step(18, "writing transcript")
    lines = styles.shape_dialogue(
        write_transcript(run, outline, speakers),
        outline,
        speakers,
        style=profile.outline_style,
        language=profile.language,
    )
    wavs = speak_lines(ctx, lines, speakers)
    ctx.step(SPEECH_PROGRESS[1], "mixing")
    mixed = ctx.tmp_dir / "episode.wav"
    spans = audio.join_lines(wavs, gap_seconds=GAP_SECONDS, out_path=mixed)
    transcript = timed_transcript(lines, spans, speakers)
    ctx.step(88, "encoding MP3")
    name = encode_episode(run, mixed, ctx.tmp_dir)
    ctx.step(97, "saving result")
    save_result(run, name, outline, transcript, time.monotonic() - started)


def read_sources(run: PodcastRun) -> list[str]:
    contents = run.sources.order_by("pk").values_list("content", flat=True)
    texts = [plain for text in contents if (plain := markdown.to_plain_text(text)).strip()]
    if not texts:
        raise EngineError("The run's sources are gone or empty; add sources and submit again.")
    return texts


def speakers_of(run: PodcastRun) -> list[Speaker]:
    """The profile's speakers, each with the voice name the configured speech engine gets."""
    speakers = [
        Speaker(name=s.name, role=s.role, voice=s.voice, pitch=s.pitch, rate=s.rate)
        for s in run.speaker_profile.speakers.all()
    ]
    if len(speakers) < 2:
        raise EngineError(
            f"Speaker profile {run.speaker_profile.slug!r} needs two or more speakers."
        )
    engine_voices = voices.engine_voices(speakers)
    for speaker in speakers:
        speaker.voice = engine_voices[speaker.name]
    return speakers


def write_outline(texts: list[str], profile) -> list[Section]:
    with errors_named("writing the outline"):
        outline = get_text_engine().write_outline(
            texts, sections=profile.segments, language=profile.language
        )
    for section in outline:
        section.points = [shorten(point) for point in section.points]
    return outline


def shorten(point: str) -> str:
    """Clip a point to a speakable length, at a word boundary when there are words."""
    words = point.split()
    point = " ".join(words)  # line breaks inside a sentence are not pauses
    if len(words) > POINT_MAX_WORDS:
        point = " ".join(words[:POINT_MAX_WORDS]) + " ..."
    if len(point) > POINT_MAX_CHARS:
        point = point[:POINT_MAX_CHARS] + "..."
    return point


def write_transcript(
    run: PodcastRun, outline: list[Section], speakers: list[Speaker]
) -> list[Line]:
    profile = run.episode_profile
    with errors_named("writing the transcript"):
        lines = get_text_engine().write_transcript(
            outline,
            speakers,
            intro=with_episode(profile.intro, run.episode_name),
            outro=with_episode(profile.outro, run.episode_name),
            briefing_suffix=run.briefing_suffix,
            target_words=profile.target_words,
            language=profile.language,
        )
    known = {speaker.name for speaker in speakers}
    lines = [line for line in lines if line.text.strip()]
    strangers = sorted({line.speaker for line in lines} - known)
    if strangers:
        raise EngineError(f"The transcript has lines for unknown speakers: {', '.join(strangers)}.")
    return lines


def with_episode(template: str, episode_name: str) -> str:
    # Not str.format: a profile's text may hold other braces, which must not raise.
    return template.replace("{episode}", episode_name)


def speak_lines(ctx, lines: list[Line], speakers: list[Speaker]) -> list[Path]:
    """One WAV per line in its speaker's voice; a WAV already on disk is kept (safe to repeat)."""
    by_name = {speaker.name: speaker for speaker in speakers}
    engine = get_speech_engine()
    folder = ctx.tmp_dir / "lines"
    folder.mkdir(exist_ok=True)
    low, high = SPEECH_PROGRESS
    wavs = []
    for index, line in enumerate(lines):
        ctx.step(low + (high - low) * index // len(lines), f"speech {index + 1}/{len(lines)}")
        wav = folder / f"{index:05d}.wav"
        if not wav.exists():
            partial = wav.with_suffix(".part.wav")
            voice = by_name[line.speaker]
            with errors_named(f"speaking line {index + 1} ({voice.name})"):
                engine.synthesize(
                    line.text,
                    voice=voice.voice,
                    pitch=voice.pitch,
                    rate=voice.rate,
                    out_path=partial,
                )
            partial.replace(wav)  # only a complete WAV gets the final name
        wavs.append(wav)
    return wavs


@contextmanager
def errors_named(what: str) -> Iterator[None]:
    """Say which step an engine failed in; a transient error stays transient (it is retried)."""
    try:
        yield
    except EngineError as exc:
        raise type(exc)(f"{what} failed: {exc}") from exc


def mp3_name(run: PodcastRun) -> str:
    return f"podcasts/{run.pk}.mp3"


def encode_episode(run: PodcastRun, mixed: Path, tmp_dir: Path) -> str:
    """Encode the MP3 in the temp folder, then move it into MEDIA_ROOT in one rename."""
    encoded = tmp_dir / "episode.mp3"
    title = re.sub(r"\s+", " ", run.episode_name).strip()
    audio.encode_mp3(mixed, encoded, title=title, artist=ARTIST)
    name = mp3_name(run)
    final = Path(settings.MEDIA_ROOT) / name
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = final.with_name(f".{final.name}.{os.getpid()}.part")  # same filesystem as final
    shutil.copyfile(encoded, staged)
    staged.replace(final)
    return name


def timed_transcript(lines: list[Line], spans, speakers: list[Speaker]) -> list[dict]:
    voices = {speaker.name: speaker.voice for speaker in speakers}
    return [
        {"speaker": line.speaker, "voice": voices[line.speaker], "text": line.text,
         "start": start, "end": end}
        for line, (start, end) in zip(lines, spans, strict=True)
    ]  # fmt: skip


def save_result(run, name: str, outline, transcript, processing_seconds: float) -> PodcastResult:
    """Write the one result row of the run, replacing what an earlier attempt left."""
    duration = media.probe(Path(settings.MEDIA_ROOT) / name).duration_seconds
    result, _ = PodcastResult.objects.update_or_create(
        run=run,
        defaults={
            "audio": name,
            "duration_seconds": round(duration, 3),
            "outline": [asdict(section) for section in outline],
            "transcript": transcript,
            "processing_time_seconds": round(processing_seconds, 3),
        },
    )
    logger.info("run %s: %.1f s of audio in %.1f s", run.pk, duration, processing_seconds)
    return result
