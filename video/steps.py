"""The video pipeline's parts. Each reads what earlier parts stored and adds its own artifacts.

Parts run in separate Celery tasks (even on separate workers), so everything they hand on goes
through the database (the VideoResult row) and files named by run id under
MEDIA_ROOT/videos/<run id>/. Every file is written under a temporary name and renamed into
place, so a redelivered or parallel part never exposes half a file, and repeating a part only
overwrites what it wrote before.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.utils import timezone

from engines import get_image_engine, get_speech_engine, get_text_engine
from engines.audio import join_lines
from engines.errors import EngineError, TransientEngineError
from engines.media import probe
from engines.text import is_chinese
from engines.video import compose
from runs.lifecycle import RunContext

from .models import CharacterImage, VideoResult, VideoRun, artifact_name

# Voices cycle through the cast when a character names none; pitches tell them apart further.
ENGLISH_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")
PITCHES = (50, 38, 66, 44)
SPEECH_RATE = 165  # words per minute: unhurried narration
LINE_GAP_SECONDS = 0.35  # a breath between lines; the scene cut falls after it


# Part 1: the script


def write_script(run: VideoRun, ctx: RunContext) -> None:
    """Turn the given script, or one written from the prompt, into scenes with a voice each."""
    ctx.step(2, "writing script")
    scenes = given_scenes(run) if run.script else written_scenes(run)
    cast = casting(run.characters, sample_text=" ".join(s["text"] for s in scenes))
    for scene in scenes:
        scene.update(cast[scene["speaker"]])
    width, height = run.size
    VideoResult.objects.update_or_create(
        run=run, defaults={"script": scenes, "width": width, "height": height}
    )
    ctx.step(10, "script written", f"{len(scenes)} scenes")


def given_scenes(run: VideoRun) -> list[dict]:
    return [
        {
            "speaker": line["speaker"],
            "text": line["text"].strip(),
            "setting": (line.get("setting") or "").strip() or f"{line['speaker']}: {line['text']}",
        }
        for line in run.script
    ]


def written_scenes(run: VideoRun) -> list[dict]:
    # Seeded by the run id: the same run always gets the same script, a retry included.
    scenes = get_text_engine().write_video_script(run.prompt, run.characters, seed=str(run.pk))
    return [{"speaker": s.character, "text": s.text, "setting": s.description} for s in scenes]


def casting(characters: list[dict], *, sample_text: str) -> dict[str, dict]:
    """Voice and pitch per character name: the character's own voice, else one of the defaults."""
    chinese = is_chinese("", sample_text)
    cast = {}
    for index, character in enumerate(characters):
        default = "cmn" if chinese else ENGLISH_VOICES[index % len(ENGLISH_VOICES)]
        cast[character["name"]] = {
            "voice": character.get("voice") or default,
            "pitch": PITCHES[index % len(PITCHES)],
        }
    return cast


# Part 2a: the pictures


def draw_characters(run: VideoRun, ctx: RunContext) -> None:
    """A portrait card per character, then a frame per scene with the speaker's portrait in it."""
    result = stored_result(run)
    folder = artifact_folder(run)
    engine = get_image_engine()  # local Pillow drawings, or IMAGE_ENGINE=openai
    portraits: dict[str, Path] = {}
    count = len(run.characters)
    for index, character in enumerate(run.characters):
        ctx.step(10 + 15 * index // count, "drawing characters", f"Portrait of {character['name']}")
        path = folder / f"character-{index}.png"
        with replaced(path) as partial:
            engine.draw_portrait(character["name"], character.get("description", ""), partial)
        portraits[character["name"]] = path
        CharacterImage.objects.update_or_create(
            result=result,
            position=index,
            defaults={"name": character["name"], "image": artifact_name(run.pk, path.name)},
        )
    for index, scene in enumerate(result.script):
        ctx.step(25 + 15 * index // len(result.script), "drawing scenes", f"Scene {index + 1}")
        with replaced(scene_frame(run, index)) as partial:
            engine.draw_scene(
                scene["text"],
                scene["setting"],
                portrait=portraits.get(scene["speaker"]),
                subtitle="",  # compose burns the subtitles in, steady over the pan
                out_path=partial,
                size=run.size,
            )


# Part 2b: the sound


def speak_narration(run: VideoRun, ctx: RunContext) -> None:
    """Speak every line in its character's voice and join them into one narration track."""
    result = stored_result(run)
    scenes = result.script
    engine = get_speech_engine()  # eSpeak NG, or SPEECH_ENGINE=openai
    lines = []
    for index, scene in enumerate(scenes):
        ctx.step(10 + 30 * index // len(scenes), "speaking narration", f"Line {index + 1}")
        lines.append(ctx.tmp_dir / f"line-{index}.wav")
        engine.synthesize(
            scene["text"],
            voice=scene["voice"],
            pitch=scene["pitch"],
            rate=SPEECH_RATE,
            out_path=lines[-1],
        )
    narration = narration_path(run)
    with replaced(narration) as partial:
        spans = join_lines(lines, gap_seconds=LINE_GAP_SECONDS, out_path=partial)
    for scene, (start, end) in zip(scenes, spans, strict=True):
        scene.update(start=start, end=end)
    # Only these two fields: the pictures part may be writing its own rows at the same moment.
    VideoResult.objects.filter(run=run).update(
        script=scenes, audio=artifact_name(run.pk, narration.name)
    )


# Part 3: the film


def compose_video(run: VideoRun, ctx: RunContext) -> None:
    """Render the frames over the narration as an MP4, or hand them to the remote provider."""
    from video import remote  # the provider client needs these helpers too

    result = stored_result(run)
    inputs = scene_inputs(run, result)
    if remote.configured():
        ctx.step(45, "sending to provider")
        remote.submit(run, ctx, inputs, narration_path(run))
        return
    ctx.step(45, "composing video", f"{len(inputs)} scenes at {run.resolution}")
    width, height = run.size
    path = artifact_folder(run) / "video.mp4"
    with replaced(path) as partial:
        compose(inputs, narration_path(run), partial, width=width, height=height, fps=run.fps,
                subtitles=[scene["text"] for scene in result.script])  # fmt: skip
    ctx.step(95, "saving video")
    save_video(run, path)


def scene_inputs(run: VideoRun, result: VideoResult) -> list[tuple[Path, float]]:
    """(frame, seconds) per scene: each scene lasts from its line's start to the next line's."""
    scenes = result.script
    frames = [scene_frame(run, index) for index in range(len(scenes))]
    if not narration_path(run).is_file() or not all(f.is_file() for f in frames):
        # Only after a chord fired early (a redelivered part): the other part is still going.
        raise TransientEngineError("the scene frames or the narration are not ready yet")
    if any("start" not in scene for scene in scenes):
        raise TransientEngineError("the narration timings are not stored yet")
    starts = [scene["start"] for scene in scenes]
    ends = [*starts[1:], scenes[-1]["end"]]
    return [(frame, end - start) for frame, start, end in zip(frames, starts, ends, strict=True)]


def save_video(run: VideoRun, path: Path) -> None:
    """Check the MP4 really has picture and sound, then record it on the result."""
    info = probe(path)
    video = info.first("video")
    if video is None or info.first("audio") is None:
        raise EngineError(f"the rendered file {path.name} lacks a video or an audio stream")
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else None
    VideoResult.objects.filter(run=run).update(
        video=artifact_name(run.pk, path.name),
        duration_seconds=round(info.duration_seconds, 3),
        width=video.width,
        height=video.height,
        processing_seconds=elapsed,
    )


# Files


def stored_result(run: VideoRun) -> VideoResult:
    result = VideoResult.objects.filter(run=run).first()
    if result is None or not result.script:
        raise TransientEngineError("the script is not stored yet")
    return result


def artifact_folder(run: VideoRun) -> Path:
    folder = run.artifact_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def scene_frame(run: VideoRun, index: int) -> Path:
    return run.artifact_dir / f"scene-{index}.png"


def narration_path(run: VideoRun) -> Path:
    return run.artifact_dir / "narration.wav"


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """Yield a temporary name next to `path`; rename it into place only if the block succeeds."""
    partial = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
