#!/usr/bin/env python
"""A 60-second 720p video through the whole pipeline, against a hand-written ffmpeg floor.

Each round submits one video run (a script long enough for about 60 s of narration, 1280x720,
25 fps) to a real worker and times it from dispatch to succeeded (script, portraits, frames,
narration and compose). Then the floor: one hand-written ffmpeg command that makes the same
video from the scene images and narration that run produced (the same pan per scene with crop,
subtitles burned in with drawtext, the same codecs and x264 settings). For scale, a still
slideshow of the same images (no motion, no subtitles) is timed too. Medians are reported.
The worker's memory is sampled from /proc every 50 ms over its whole process tree (the Celery
parent, its prefork children and their ffmpeg): the sum of RSS and the sum of PSS (which splits
shared pages between the processes that share them, so it counts each page once).

    .venv/bin/python bench/video.py [--rounds 3] [--seconds 60]

Environment: DATABASE_URL (default a bench_video database on the local MariaDB, created and
migrated here) and CELERY_BROKER_URL (default redis://127.0.0.1:6379/12, flushed first).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from common import configure, prepare_database

configure("bench_video", broker_db=12)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CAST = [
    {"name": "Mira", "description": "a lighthouse keeper in a blue coat"},
    {"name": "Tom", "description": "a red-haired fisherman"},
    {"name": "June", "description": "a young painter in a yellow scarf"},
]
LINES = [
    "The storm came in from the west just after the boats were tied up for the night.",
    "I counted every hull twice, and still I am not sure we brought them all home.",
    "The lamp has not failed in forty years, and it will not fail tonight either.",
    "Down on the quay the water is climbing over the lowest steps already.",
    "Somebody should walk the breakwater and check that the chains are holding.",
    "I will go, I know every stone of it, even in the dark and the rain.",
    "Take the old lantern then, the new one never liked the salt in the air.",
    "From up here the whole harbour looks like a painting that is still wet.",
    "When the clouds open you can see the mainland lights blinking one by one.",
    "The chains are holding, but the third mooring post is cracked right through.",
    "Then we tie the smaller boats to the inner wall before the tide turns.",
    "By morning the sea will be flat again, as if nothing ever happened here.",
]


def script_for(seconds: float) -> list[dict]:
    """Lines, cycling through the cast, until the spoken narration reaches `seconds`."""
    from engines.speech import synthesize
    from video.steps import LINE_GAP_SECONDS, SPEECH_RATE, casting

    cast = casting(CAST, sample_text="")
    script, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        while total < seconds:
            speaker = CAST[len(script) % len(CAST)]["name"]
            text = LINES[len(script) % len(LINES)]
            voice = cast[speaker]
            spoken = synthesize(text, voice=voice["voice"], pitch=voice["pitch"],
                                rate=SPEECH_RATE, out_path=Path(tmp) / "line.wav")  # fmt: skip
            total += spoken + (LINE_GAP_SECONDS if script else 0)
            script.append({"speaker": speaker, "text": text})
    return script


class TreeMemory:
    """Peak memory of a process and all its descendants, sampled from /proc."""

    def __init__(self, root_pid: int, interval: float = 0.05):
        self.root_pid, self.interval = root_pid, interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            pids = descendants(self.root_pid) | {self.root_pid}
            self.peak_rss = max(self.peak_rss, sum(kib(pid, "status", "VmRSS:") for pid in pids))
            self.peak_pss = max(
                self.peak_pss, sum(kib(pid, "smaps_rollup", "Pss:") for pid in pids)
            )


def descendants(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def kib(pid: int, name: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def scene_spans(run, result, work: Path) -> tuple[list[Path], list[float]]:
    """The run's scene frames (copied from the storage into `work`) and each one's seconds."""
    from runs.artifacts import local_copy

    scenes = result.script
    starts = [s["start"] for s in scenes]
    ends = [*starts[1:], scenes[-1]["end"]]
    frames = [local_copy(run.checkpoints[f"frame {i + 1}"], work) for i in range(len(scenes))]
    return frames, [end - start for start, end in zip(starts, ends, strict=True)]


def narration_of(result, work: Path) -> Path:
    from runs.artifacts import local_copy

    return local_copy(result.audio.name, work)


def slideshow(frames: list[Path], seconds: list[float], listing: Path) -> Path:
    entries = [f"file '{f}'\nduration {s:.3f}\n" for f, s in zip(frames, seconds, strict=True)]
    listing.write_text("".join(entries) + f"file '{frames[-1]}'\n")
    return listing


def encode_args(run, out: Path) -> list[str]:
    """The codecs and settings of our MP4, so the anchors encode exactly what we encode."""
    return [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-r", str(run.fps), "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-shortest",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def same_output_command(run, result, work: Path, out: Path) -> list[str]:
    """The anchor: one hand-written ffmpeg command making the same video from the same images and
    narration: the same pan per scene (crop), subtitles burned in with drawtext, same encoder."""
    from engines.media import ffmpeg_exe
    from engines.video import PAN_MARGIN, _pan_expressions, frame_counts

    frames, seconds = scene_spans(run, result, work)
    width, height = run.size
    counts = frame_counts(seconds, sum(seconds), run.fps)
    x, y = _pan_expressions(counts)
    texts, start = [], 0.0
    for index, (scene, length) in enumerate(zip(result.script, seconds, strict=True)):
        textfile = work / f"subtitle-{index}.txt"
        textfile.write_text(textwrap.fill(scene["text"], 56))
        texts.append(
            f"drawtext=fontfile={FONT}:textfile={textfile}:fontsize={width // 40}:"
            f"fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=10:line_spacing=8:"
            f"x=(w-tw)/2:y=h-th-{height // 24}:enable='between(t,{start:.3f},{start + length:.3f})'"
        )
        start += length
    canvas = f"{int(width * PAN_MARGIN) // 2 * 2}:{int(height * PAN_MARGIN) // 2 * 2}"
    graph = (f"[0:v]scale={canvas},fps={run.fps},setsar=1,"
             f"crop={width}:{height}:x='{x}':y='{y}'," + ",".join(texts) + "[video]")  # fmt: skip
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(slideshow(frames, seconds, work / "same.txt")),
        "-i", str(narration_of(result, work)), "-filter_complex", graph,
        "-map", "[video]", "-map", "1:a",
        *encode_args(run, out),
    ]  # fmt: skip


def static_command(run, result, work: Path, out: Path) -> list[str]:
    """For scale only: the same images as a still slideshow (no motion, no subtitles)."""
    from engines.media import ffmpeg_exe

    frames, seconds = scene_spans(run, result, work)
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(slideshow(frames, seconds, work / "static.txt")),
        "-i", str(narration_of(result, work)), *encode_args(run, out),
    ]  # fmt: skip


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ffmpeg command."""
    start = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"the anchor command failed: {shlex.join(command)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60, help="narration length to reach")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    options = parser.parse_args()

    prepare_database()
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from runs.tests.helpers import start_worker

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    script = script_for(options.seconds)
    worker = start_worker(settings.CELERY_BROKER_URL, concurrency=options.concurrency,
                          queues="video")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    rounds = []
    try:
        for index in range(options.rounds):
            rounds.append(one_round(index, owner, script, worker, work))
    finally:
        worker.stop()
    report(rounds, options, len(script))


def one_round(index: int, owner, script: list[dict], worker, work: Path) -> dict:
    """One video run through the worker, then the two anchor commands on its images and audio."""
    from engines.media import probe
    from runs import lifecycle
    from runs.models import TERMINAL, RunStatus
    from video.models import VideoResult, VideoRun

    run = VideoRun.objects.create(owner=owner, title=f"Bench {index}", characters=CAST,
                                  script=script, resolution="1280x720", fps=25)  # fmt: skip
    compose_started = None
    with TreeMemory(worker.process.pid) as memory:
        start = time.perf_counter()
        lifecycle.dispatch(run)
        while run.status not in TERMINAL:
            time.sleep(0.05)
            run.refresh_from_db()
            if compose_started is None and run.stage == "composing video":
                compose_started = time.perf_counter()
        end = time.perf_counter()
    if run.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"round {index + 1}: the run ended {run.status}: {run.message}")
    result = VideoResult.objects.get(run=run)
    same_command = same_output_command(run, result, work, work / "same.mp4")
    same_seconds, same_mb = timed(same_command)
    static_seconds, _ = timed(static_command(run, result, work, work / "static.mp4"))
    from runs.artifacts import local_copy

    rendered = local_copy(result.video.name, work)
    ours = probe(rendered)
    for path in (rendered, work / "same.mp4", work / "static.mp4"):
        info = probe(path)
        video = info.first("video")
        assert (video.width, video.height) == (1280, 720) and info.first("audio"), path
        assert abs(info.duration_seconds - ours.duration_seconds) < 0.5, path
    row = {
        "duration": ours.duration_seconds,
        "run": end - start,
        "compose": end - (compose_started or start),
        "same": same_seconds,
        "same_mb": same_mb,
        "static": static_seconds,
        "pss": memory.peak_pss / 1024,
        "rss": memory.peak_rss / 1024,
        "command": same_command,
    }
    print(f"round {index + 1}: video {row['duration']:.1f} s; run {row['run']:.1f} s "
          f"(compose {row['compose']:.1f} s); same-output ffmpeg {same_seconds:.1f} s; "
          f"still slideshow {static_seconds:.1f} s; worker peak {row['pss']:.0f} MB PSS "
          f"/ {row['rss']:.0f} MB RSS")  # fmt: skip
    return row


def report(rounds: list[dict], options, scenes: int) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    duration, run, compose = median("duration"), median("run"), median("compose")
    same, static = median("same"), median("static")
    print(f"\n{options.rounds} rounds, {options.concurrency} worker processes, {scenes} scenes, "
          f"1280x720 at 25 fps; medians")  # fmt: skip
    print(f"video length:           {duration:.1f} s")
    print(f"whole run (API to MP4): {run:.1f} s  real-time factor {run / duration:.2f}")
    print(f"  compose part:         {compose:.1f} s  real-time factor {compose / duration:.2f}")
    print(f"floor, same output:     {same:.1f} s  real-time factor {same / duration:.2f}")
    print(f"still slideshow:        {static:.1f} s  real-time factor {static / duration:.2f}")
    print(f"ratio run / floor:      {run / same:.2f}  (target <= 1.5; compose / floor "
          f"{compose / same:.2f}; run / still slideshow {run / static:.2f})")  # fmt: skip
    print(f"worker peak memory:     {max(r['pss'] for r in rounds):.0f} MB PSS, "
          f"{max(r['rss'] for r in rounds):.0f} MB RSS summed over its process tree "
          f"(target <= 500 MB); the floor command alone peaks at "
          f"{max(r['same_mb'] for r in rounds):.0f} MB RSS")  # fmt: skip
    print("floor command (last round): " + shlex.join(rounds[-1]["command"]))


if __name__ == "__main__":
    main()
