"""The video pipeline's parts. Each reads what earlier parts recorded and adds its own artifacts.

Parts run in separate Celery tasks, on any worker machine, so everything they hand on goes
through the run's checkpoints (`ctx.once`, recorded on the run row, fenced by the attempt) and
artifacts in the storage (`runs.artifacts`) named by run id, videos/<run id>/...:

    "script"          the scenes, each with its speaker's voice and pitch (a text engine call
                      when the run has only a prompt)
    "portrait <n>"    storage name of character n's portrait card (an image engine call)
    "frame <n>"       storage name of scene n's frame (an image engine call)
    "speech <n>"      storage name of scene n's spoken line (a speech engine call; the
                      line WAVs are removed once the run has succeeded)
    "narration"       {"audio": storage name, "spans": [[start, end], ...]}
    "provider job"    the remote provider's job id: a job is submitted once per run

A retried part, or a later attempt of the run, gets each recorded value back instead of calling
the engine again. The VideoResult row (and its CharacterImage rows) is written only by the last
part, together with the run's `succeeded`, in one transaction (`ctx.complete`): a killed or
superseded attempt leaves no result. A part makes its files in its own temporary folder, which
goes when the part ends, and saves each finished one to the storage in one step, so a redelivered
or parallel part never exposes half a file; a part that needs an earlier part's file downloads it
into its folder (`fetched`).

With a remote provider (VIDEO_PROVIDER_URL), compose hands the frames and narration to it and the
run waits; the scan's poll (`poll_provider`) keeps it waiting, fails it, or hands back the URL of
the finished MP4, which `collect_video` downloads in a part of its own.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from engines import EngineConfig, get_image_engine, get_speech_engine, get_text_engine, language
from engines.audio import join_lines
from engines.errors import EngineError, TransientEngineError
from engines.interfaces import Character, ImageEngine, SpeechEngine
from engines.media import probe
from engines.speech import voice_for_language
from engines.video import compose
from runs import artifacts, canvas
from runs.lifecycle import RunContext
from runs.models import RunStatus

from . import provider
from .models import CharacterImage, VideoResult, VideoRun, artifact_name

logger = logging.getLogger(__name__)

# Voices cycle through the cast when a character names none; pitches tell them apart further.
ENGLISH_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")
PITCHES = (50, 38, 66, 44)
SPEECH_RATE = 165  # words per minute: unhurried narration
LINE_GAP_SECONDS = 0.35  # a breath between lines; the scene cut falls after it
# The scan polls each waiting run in turn, holding its row lock: a slow provider must not stall it.
POLL_TIMEOUT_SECONDS = 10.0

# Checkpoint names (see the module docstring).
SCRIPT = "script"
NARRATION = "narration"
PROVIDER_JOB = "provider job"


def portrait_checkpoint(index: int) -> str:
    return f"portrait {index + 1}"


def frame_checkpoint(index: int) -> str:
    return f"frame {index + 1}"


def speech_checkpoint(index: int) -> str:
    return f"speech {index + 1}"


def engine_config() -> EngineConfig:
    """The engines web/settings.py chose; read per call, so a test's override applies."""
    return EngineConfig.from_settings(settings)


def provider_config() -> provider.ProviderConfig:
    return provider.ProviderConfig(settings.VIDEO_PROVIDER_URL, settings.VIDEO_PROVIDER_KEY)


# Part 1: the script


def write_script(run: VideoRun, ctx: RunContext) -> None:
    """Turn the given script, or one written from the prompt, into scenes with a voice each."""
    ctx.step(2, "writing script")
    scenes = ctx.once(SCRIPT, partial(cast_scenes, run))
    ctx.step(10, "script written", f"{len(scenes)} scenes")


def cast_scenes(run: VideoRun) -> list[dict]:
    scenes = given_scenes(run) if run.script else written_scenes(run)
    cast = casting(run.characters, sample_text=" ".join(s["text"] for s in scenes))
    for scene in scenes:
        scene.update(cast[scene["speaker"]])
    return scenes


def given_scenes(run: VideoRun) -> list[dict]:
    """The script's lines, each spoken by the character it names; a line without a setting
    stays where the line before it was (the harbour at sunrise, until another is named)."""
    scenes, setting = [], ""
    for line in run.script:
        setting = (line.get("setting") or "").strip() or setting
        scenes.append({
            "speaker": line["speaker"],
            "text": line["text"].strip(),
            "setting": setting or f"{line['speaker']}: {line['text']}",
        })  # fmt: skip
    return scenes


def written_scenes(run: VideoRun) -> list[dict]:
    # Seeded by the run id: the same run always gets the same script, a retry included.
    engine = get_text_engine(engine_config())
    scenes = engine.write_video_script(run.prompt, run.characters, seed=str(run.pk))
    return [{"speaker": s.character, "text": s.text, "setting": s.description} for s in scenes]


def casting(characters: list[Character], *, sample_text: str) -> dict[str, dict]:
    """Voice and pitch per character name: the character's own voice, else one of the defaults.

    Voices follow the script's language: an eSpeak voice that cannot speak it becomes the
    language's own voice with the same variant (`engines.language.voice_for`); a provider's voice
    names (SPEECH_ENGINE=openai) are left as they are.
    """
    spoken = language.detect(sample_text) or "en"
    local = not engine_config().remote_speech_only
    cast = {}
    for index, character in enumerate(characters):
        default = ENGLISH_VOICES[index % len(ENGLISH_VOICES)]
        voice = character.get("voice") or default
        cast[character["name"]] = {
            "voice": voice_for_language(voice, spoken) if local else voice,
            "pitch": PITCHES[index % len(PITCHES)],
        }
    return cast


# Part 2a: the pictures


def draw_characters(run: VideoRun, ctx: RunContext) -> None:
    """A portrait card per character, then a frame per scene with the speaker's portrait in it."""
    scenes = recorded_script(ctx)
    engine = get_image_engine(engine_config())  # local Pillow drawings, or IMAGE_ENGINE=openai
    portraits: dict[str, str] = {}
    count = len(run.characters)
    for index, character in enumerate(run.characters):
        ctx.step(10 + 15 * index // count, "drawing characters", f"Portrait of {character['name']}")
        draw = partial(draw_portrait, run, ctx.tmp_dir, engine, index, character)
        portraits[character["name"]] = ctx.once(portrait_checkpoint(index), draw)
    for index, scene in enumerate(scenes):
        ctx.step(25 + 15 * index // len(scenes), "drawing scenes", f"Scene {index + 1}")
        portrait = portraits.get(scene["speaker"])
        draw = partial(draw_frame, run, ctx.tmp_dir, engine, index, scene, portrait)
        ctx.once(frame_checkpoint(index), draw)


def draw_portrait(
    run: VideoRun, folder: Path, engine: ImageEngine, index: int, character: Character
) -> str:
    path = folder / f"character-{index}.png"
    with replaced(path) as partial_path:
        engine.draw_portrait(character["name"], character.get("description", ""), partial_path)
    return artifacts.save(artifact_name(run.pk, path.name), path)


def draw_frame(
    run: VideoRun, folder: Path, engine: ImageEngine, index: int, scene: dict, portrait: str | None
) -> str:
    """Scene `index`'s frame with the speaker's portrait (an artifact name) in it."""
    path = folder / f"scene-{index}.png"
    with replaced(path) as partial_path:
        engine.draw_scene(
            scene["text"],
            scene["setting"],
            portrait=fetched(portrait, folder) if portrait else None,
            subtitle="",  # compose burns the subtitles in, steady over the pan
            out_path=partial_path,
            size=run.size,
        )
    return artifacts.save(artifact_name(run.pk, path.name), path)


# Part 2b: the sound


def speak_narration(run: VideoRun, ctx: RunContext) -> None:
    """Speak every line in its character's voice and join them into one narration track."""
    scenes = recorded_script(ctx)
    engine = get_speech_engine(engine_config())  # eSpeak NG, or SPEECH_ENGINE=openai
    lines = []
    for index, scene in enumerate(scenes):
        ctx.step(10 + 30 * index // len(scenes), "speaking narration", f"Line {index + 1}")
        speak = partial(speak_line, run, ctx.tmp_dir, engine, index, scene)
        lines.append(ctx.once(speech_checkpoint(index), speak))
    ctx.once(NARRATION, partial(join_narration, run, ctx.tmp_dir, lines))


def speak_line(run: VideoRun, folder: Path, engine: SpeechEngine, index: int, scene: dict) -> str:
    path = folder / f"line-{index}.wav"
    with replaced(path) as partial_path:
        engine.synthesize(
            scene["text"],
            voice=scene["voice"],
            pitch=scene["pitch"],
            rate=SPEECH_RATE,
            out_path=partial_path,
        )
    return artifacts.save(artifact_name(run.pk, path.name), path)


def join_narration(run: VideoRun, folder: Path, lines: list[str]) -> dict:
    """One narration track from the spoken lines (artifact names), with each line's span."""
    local = [fetched(line, folder) for line in lines]
    narration = folder / "narration.wav"
    with replaced(narration) as partial_path:
        spans = join_lines(local, gap_seconds=LINE_GAP_SECONDS, out_path=partial_path)
    name = artifacts.save(artifact_name(run.pk, narration.name), narration)
    return {"audio": name, "spans": spans}


# Part 3: the film


def compose_video(run: VideoRun, ctx: RunContext) -> None:
    """Render the frames over the narration as an MP4, or hand them to the remote provider."""
    scenes = timed_scenes(run, ctx)
    ctx.step(42, "fetching parts")
    inputs = scene_inputs(ctx, scenes)
    narration = fetched(ctx.run.checkpoints[NARRATION]["audio"], ctx.tmp_dir)
    subtitles = [scene["text"] for scene in scenes]
    if provider_config().configured:
        ctx.step(45, "sending to provider")
        hand_to_provider(run, ctx, inputs, narration, subtitles)
        return
    ctx.step(45, "composing video", f"{len(inputs)} scenes at {run.resolution}")
    width, height = run.size
    path = ctx.tmp_dir / "video.mp4"
    with replaced(path) as partial_path:
        compose(inputs, narration, partial_path, width=width, height=height,
                fps=run.fps, subtitles=subtitles,
                font_path=engine_config().font_path)  # fmt: skip
    ctx.step(95, "saving video")
    save_video(run, ctx, path)


def timed_scenes(run: VideoRun, ctx: RunContext) -> list[dict]:
    """The script's scenes with their line's start and end in the narration.

    A part missing means a chord fired early (a redelivered part): the other part is still going.
    """
    scenes = recorded_script(ctx)
    needed = [
        NARRATION,
        *(frame_checkpoint(i) for i in range(len(scenes))),
        *(portrait_checkpoint(i) for i in range(len(run.characters))),
    ]
    if any(name not in ctx.run.checkpoints for name in needed):
        raise TransientEngineError("the scene frames or the narration are not ready yet")
    spans = ctx.run.checkpoints[NARRATION]["spans"]
    return [
        {**scene, "start": start, "end": end}
        for scene, (start, end) in zip(scenes, spans, strict=True)
    ]


def scene_inputs(ctx: RunContext, scenes: list[dict]) -> list[tuple[Path, float]]:
    """(local frame, seconds) per scene: each scene lasts from its line's start to the next
    line's. The frames are downloaded into the part's folder."""
    names = [ctx.run.checkpoints[frame_checkpoint(index)] for index in range(len(scenes))]
    frames = [fetched(name, ctx.tmp_dir) for name in names]
    starts = [scene["start"] for scene in scenes]
    ends = [*starts[1:], scenes[-1]["end"]]
    return [(frame, end - start) for frame, start, end in zip(frames, starts, ends, strict=True)]


def save_video(run: VideoRun, ctx: RunContext, path: Path) -> None:
    """Check the local MP4 really has picture and sound, save it, then record the result and
    end the run. The result rows and the run's `succeeded` commit together, fenced by the
    attempt; the MP4 is saved before, named by run id, so a superseded attempt's is replaced.
    """
    info = probe(path)
    video = info.first("video")
    if video is None or info.first("audio") is None:
        raise EngineError(f"the rendered file {path.name} lacks a video or an audio stream")
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else None
    fields = {
        "script": timed_scenes(run, ctx),
        "audio": ctx.run.checkpoints[NARRATION]["audio"],
        "video": artifacts.save(artifact_name(run.pk, "video.mp4"), path),
        "duration_seconds": round(info.duration_seconds, 3),
        "width": video.width,
        "height": video.height,
        "processing_time_seconds": elapsed,
    }
    portraits = [
        (index, character["name"], ctx.run.checkpoints[portrait_checkpoint(index)])
        for index, character in enumerate(run.characters)
    ]

    def save() -> None:
        result, _ = VideoResult.objects.update_or_create(run=run, defaults=fields)
        for position, name, image in portraits:
            CharacterImage.objects.update_or_create(
                result=result, position=position, defaults={"name": name, "image": image}
            )
        result.images.filter(position__gte=len(portraits)).delete()

    ctx.complete(save)
    for index in range(len(fields["script"])):  # the narration holds the spoken lines now
        artifacts.delete(ctx.run.checkpoints[speech_checkpoint(index)])


# The remote provider


def hand_to_provider(
    run: VideoRun,
    ctx: RunContext,
    inputs: list[tuple[Path, float]],
    narration: Path,
    subtitles: list[str],
) -> None:
    """Send the frames and narration as one job and leave the run `waiting` on it."""
    scenes = [
        provider.JobScene(frame, seconds, subtitle)
        for (frame, seconds), subtitle in zip(inputs, subtitles, strict=True)
    ]
    submit = partial(provider.submit, provider_config(), title=run.title, size=run.size,
                     fps=run.fps, scenes=scenes, audio=narration)  # fmt: skip
    # Once per run: a retried compose, or a later attempt, waits on the job already submitted.
    job_id = ctx.once(PROVIDER_JOB, submit)
    canvas.wait_remote(ctx, job_id, "Rendering at the provider.")
    logger.info("run %s waits on provider job %s", run.pk, job_id)


def poll_provider(run: VideoRun) -> str | None:
    """Ask the provider about a waiting run's job; the URL of its MP4 once the job is done.

    pending/running: the run stays `waiting` (heartbeat refreshed). failed: the run fails with
    the provider's reason. A provider that cannot be reached leaves the run waiting for the next
    scan; a run cancelled meanwhile ends `cancelled` without asking.
    """
    run.refresh_from_db()
    if run.status != RunStatus.WAITING:
        return None
    if run.cancel_requested:
        canvas.end_waiting(run, RunStatus.CANCELLED, message="Cancelled while waiting.")
        return None
    try:
        job = provider.job_status(
            provider_config(), run.remote_job_id, timeout=POLL_TIMEOUT_SECONDS
        )
    except TransientEngineError as exc:
        logger.warning("run %s: provider unreachable, will poll again: %s", run.pk, exc)
        return None
    except EngineError as exc:
        canvas.end_waiting(run, RunStatus.FAILED, message=str(exc)[:255], error=str(exc),
                           checkpoints=without_job(run))  # fmt: skip
        return None
    return settle(run, job)


def settle(run: VideoRun, job: provider.Job) -> str | None:
    if job.status in ("pending", "running"):
        canvas.note_waiting(run, f"The provider's job is {job.status}.")
        return None
    if job.status == "done" and job.video_url:
        return job.video_url
    reason = job.error or f"unexpected job status {job.status!r}"
    message = f"The provider failed the job: {reason}"[:255]
    canvas.end_waiting(run, RunStatus.FAILED, message=message, error=json.dumps(job.answer),
                       checkpoints=without_job(run))  # fmt: skip
    return None


def without_job(run: VideoRun) -> dict:
    """The run's checkpoints less its provider job: a job the provider failed is not waited on
    again, so a retry of the run submits a new one (what it paid for before is kept)."""
    return {name: value for name, value in run.checkpoints.items() if name != PROVIDER_JOB}


def collect_video(run: VideoRun, ctx: RunContext, url: str) -> None:
    """The provider is done: download its MP4 into the part's folder and record it."""
    ctx.step(90, "downloading video")
    path = ctx.tmp_dir / "video.mp4"
    with replaced(path) as partial_path:
        provider.download(url, partial_path)
    save_video(run, ctx, path)


# Files


def recorded_script(ctx: RunContext) -> list[dict]:
    scenes = ctx.run.checkpoints.get(SCRIPT)
    if not scenes:
        raise TransientEngineError("the script is not recorded yet")
    return scenes


def fetched(name: str, folder: Path) -> Path:
    """The artifact `name` as a file in the part's `folder`: made there, or downloaded (an
    earlier part, or an earlier attempt, may have run on another machine)."""
    try:
        return artifacts.local_file(name, folder)
    except artifacts.ArtifactMissing:
        raise EngineError(f"{name}, made by an earlier part, is gone from the storage") from None


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to `path`; rename it into place only if the block succeeds."""
    partial = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
