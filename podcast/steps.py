"""The podcast pipeline: sources -> outline -> transcript -> speech per line -> MP3 -> result.

Each step reports progress through `ctx.step` and can run again from the start. The engine calls
that may cost (the outline, the transcript, each line's speech) sit behind checkpoints recorded
on the run (`ctx.once`), so a retried attempt resumes where the last one stopped instead of
paying again: "outline" and "transcript" hold the JSON, "speech <n>" the storage name of line
n's WAV, saved as the artifact podcasts/<run id>/line-NNNNN.wav (the attempt's temporary folder
does not outlive it; a later attempt, maybe on another machine, downloads it) and removed once
the episode is saved. Every file is made in the attempt's temporary folder and saved to the
storage in one step (`runs.artifacts`). The MP3 (podcasts/<run id>.mp3) is replaced, and the
result row commits with the run's `succeeded` in one transaction (`ctx.complete`), so a
superseded attempt leaves none. Audio never sits in memory whole: lines are WAV files on disk
and ffmpeg streams them.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from functools import partial
from pathlib import Path

from django.conf import settings

from engines import EngineConfig, audio, get_speech_engine, get_text_engine, language, media
from engines.errors import EngineError
from engines.interfaces import Line, Section, Speaker, SpeechEngine
from engines.text import points_for
from runs import artifacts
from runs.lifecycle import RunContext

from . import markdown, styles, voices
from .models import EpisodeProfile, PodcastResult, PodcastRun

logger = logging.getLogger(__name__)

GAP_SECONDS = 0.35  # a breath between turns
# A source without full stops would make one giant "sentence"; a spoken point stays short.
POINT_MAX_WORDS = 60
POINT_MAX_CHARS = 400  # Chinese has no spaces: bound it by characters too
ARTIST = "Media runs podcast"
SPEECH_PROGRESS = (25, 80)  # speech is most of the time, so most of the bar


def generate(run: PodcastRun, ctx: RunContext) -> None:
    """Every step of one episode, in order."""
    started = time.monotonic()
    ctx.step(2, "reading sources")
    texts = read_sources(run)
    profile = run.episode_profile
    spoken = language.episode_language("\n".join(texts), profile.language)
    speakers = speakers_of(run, spoken)
    ctx.step(10, "writing outline")

    def outline_of_sources() -> list[dict]:
        outline = styles.shape_outline(write_outline(texts, profile, spoken), profile.outline_style)
        return [asdict(section) for section in outline]

    outline = [Section(**section) for section in ctx.once("outline", outline_of_sources)]
    ctx.step(18, "writing transcript")

    def dialogue() -> list[dict]:
        lines = styles.shape_dialogue(
            write_transcript(run, outline, speakers, spoken),
            outline,
            speakers,
            style=profile.outline_style,
            language=spoken,
        )
        return [asdict(line) for line in lines]

    lines = [Line(**line) for line in ctx.once("transcript", dialogue)]
    wavs = speak_lines(run, ctx, lines, speakers)
    ctx.step(SPEECH_PROGRESS[1], "mixing")
    mixed = ctx.tmp_dir / "episode.wav"
    spans = audio.join_lines(wavs, gap_seconds=GAP_SECONDS, out_path=mixed)
    transcript = timed_transcript(lines, spans, speakers)
    ctx.step(88, "encoding MP3")
    encoded = encode_episode(run, mixed, ctx.tmp_dir)
    duration = media.probe(encoded).duration_seconds
    ctx.step(97, "saving result")
    name = artifacts.save(mp3_name(run), encoded)
    elapsed = time.monotonic() - started
    ctx.complete(lambda: save_result(run, name, duration, outline, transcript, elapsed))
    logger.info("run %s: %.1f s of audio in %.1f s", run.pk, duration, elapsed)
    remove_line_files(run)  # the episode holds them now; no later attempt needs them


def read_sources(run: PodcastRun) -> list[str]:
    contents = run.sources.order_by("pk").values_list("content", flat=True)
    texts = [plain for text in contents if (plain := markdown.to_plain_text(text)).strip()]
    if not texts:
        raise EngineError("The run's sources are gone or empty; add sources and submit again.")
    return texts


def speakers_of(run: PodcastRun, spoken: str | None = None) -> list[Speaker]:
    """The profile's speakers, each with the voice name the configured speech engine gets.

    `spoken` is the episode's language (the sources', see `engines.language`): an eSpeak voice
    that cannot speak it is switched to one that can (`voices.engine_voices`).
    """
    if spoken is None:
        texts = read_sources(run)
        spoken = language.episode_language("\n".join(texts), run.episode_profile.language)
    speakers = [
        Speaker(name=s.name, role=s.role, voice=s.voice, pitch=s.pitch, rate=s.rate)
        for s in run.speaker_profile.speakers.all()
    ]
    if len(speakers) < 2:
        raise EngineError(
            f"Speaker profile {run.speaker_profile.slug!r} needs two or more speakers."
        )
    engine_voices = voices.engine_voices(speakers, spoken)
    for speaker in speakers:
        speaker.voice = engine_voices[speaker.name]
    return speakers


def write_outline(
    texts: list[str], profile: EpisodeProfile, spoken: str | None = None
) -> list[Section]:
    with errors_named("writing the outline"):
        outline = get_text_engine(EngineConfig.from_settings(settings)).write_outline(
            texts,
            sections=profile.segments,
            language=spoken or profile.language,
            # Enough of the sources' sentences to fill the profile's length, no more.
            points=points_for(
                texts, words=profile.target_words // profile.segments, language=spoken or ""
            ),
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
    run: PodcastRun, outline: list[Section], speakers: list[Speaker], spoken: str | None = None
) -> list[Line]:
    profile = run.episode_profile
    spoken = spoken or profile.language
    # A profile's English greeting is not read out in a Chinese episode (nor the reverse).
    intro = styles.framing(profile.intro, spoken, "intro")
    outro = styles.framing(profile.outro, spoken, "outro")
    with errors_named("writing the transcript"):
        lines = get_text_engine(EngineConfig.from_settings(settings)).write_transcript(
            outline,
            speakers,
            intro=with_episode(intro, run.episode_name),
            outro=with_episode(outro, run.episode_name),
            briefing_suffix=run.briefing_suffix,
            target_words=profile.target_words,
            language=spoken,
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


def speak_lines(
    run: PodcastRun, ctx: RunContext, lines: list[Line], speakers: list[Speaker]
) -> list[Path]:
    """One local WAV per line in its speaker's voice, each behind checkpoint "speech <n>".

    Each WAV is saved as an artifact (`line_name`) in the background while the next line is
    spoken, and its checkpoint is recorded once it is saved, so a later attempt of the run, on
    any machine, downloads the lines an earlier one paid for and speaks only the rest.
    """
    by_name = {speaker.name: speaker for speaker in speakers}
    engine = get_speech_engine(EngineConfig.from_settings(settings))
    low, high = SPEECH_PROGRESS
    wavs = []
    with artifacts.BackgroundSaves() as saves:
        try:
            for index, line in enumerate(lines):
                progress = low + (high - low) * index // len(lines)
                ctx.step(progress, f"speech {index + 1}/{len(lines)}")
                record(ctx, saves.done())
                checkpoint, name = f"speech {index + 1}", line_name(run, index)
                if checkpoint in ctx.run.checkpoints:  # paid for by an earlier attempt
                    wavs.append(local_line(ctx.run.checkpoints[checkpoint], ctx.tmp_dir, index + 1))
                    continue
                wav = ctx.tmp_dir / Path(name).name
                speak_line(engine, wav, index + 1, line, by_name[line.speaker])
                saves.save(checkpoint, name, wav)
                wavs.append(wav)
        except BaseException:
            # The lines spoken before the failure are paid for: keep them for the next attempt.
            with suppress(Exception):
                record(ctx, saves.wait())
            raise
        record(ctx, saves.wait())
    return wavs


def record(ctx: RunContext, saved: list[tuple[str, str]]) -> None:
    """Record each saved line's checkpoint: its artifact name."""
    for checkpoint, name in saved:
        ctx.once(checkpoint, partial(str, name))


def speak_line(engine: SpeechEngine, wav: Path, number: int, line: Line, voice: Speaker) -> Path:
    """Speak line `number` into `wav`; only a complete WAV gets the name."""
    partial_wav = wav.with_name(f".{wav.stem}-{uuid.uuid4().hex[:8]}{wav.suffix}")
    try:
        with errors_named(f"speaking line {number} ({voice.name})"):
            engine.synthesize(
                line.text, voice=voice.voice, pitch=voice.pitch, rate=voice.rate,
                out_path=partial_wav,
            )  # fmt: skip
        partial_wav.replace(wav)
    finally:
        partial_wav.unlink(missing_ok=True)
    return wav


def local_line(name: str, tmp_dir: Path, number: int) -> Path:
    """Line `number`'s WAV on this machine: spoken in this attempt, or downloaded."""
    try:
        return artifacts.local_file(name, tmp_dir)
    except artifacts.ArtifactMissing:
        raise EngineError(f"The speech of line {number} from an earlier attempt is gone.") from None


def line_name(run: PodcastRun, index: int) -> str:
    """Storage name of line `index`'s WAV, kept between attempts."""
    return f"{line_folder(run)}/line-{index:05d}.wav"


def line_folder(run: PodcastRun) -> str:
    return f"podcasts/{run.pk}"


def remove_line_files(run: PodcastRun) -> None:
    artifacts.delete_folder(line_folder(run))


@contextmanager
def errors_named(what: str) -> Iterator[None]:
    """Say which step an engine failed in; a transient error stays transient (it is retried)."""
    try:
        yield
    except EngineError as exc:
        raise type(exc)(f"{what} failed: {exc}") from exc


def mp3_name(run: PodcastRun) -> str:
    return f"podcasts/{run.pk}.mp3"


def encode_episode(run: PodcastRun, mixed: Path, tmp_dir: Path) -> Path:
    """Encode the tagged MP3 in the attempt's folder."""
    encoded = tmp_dir / "episode.mp3"
    title = re.sub(r"\s+", " ", run.episode_name).strip()
    audio.encode_mp3(mixed, encoded, title=title, artist=ARTIST)
    return encoded


def timed_transcript(
    lines: list[Line], spans: list[tuple[float, float]], speakers: list[Speaker]
) -> list[dict]:
    voices = {speaker.name: speaker.voice for speaker in speakers}
    return [
        {"speaker": line.speaker, "voice": voices[line.speaker], "text": line.text,
         "start": start, "end": end}
        for line, (start, end) in zip(lines, spans, strict=True)
    ]  # fmt: skip


def save_result(
    run: PodcastRun,
    name: str,
    duration_seconds: float,
    outline: list[Section],
    transcript: list[dict],
    processing_time_seconds: float,
) -> PodcastResult:
    """Write the one result row of the run (inside `ctx.complete`'s transaction)."""
    result, _ = PodcastResult.objects.update_or_create(
        run=run,
        defaults={
            "audio": name,
            "duration_seconds": round(duration_seconds, 3),
            "outline": [asdict(section) for section in outline],
            "transcript": transcript,
            "processing_time_seconds": round(processing_time_seconds, 3),
        },
    )
    return result
