#!/usr/bin/env python
"""A ~1,000-word two-speaker episode through our pipeline against the raw tools' floor, same run.

Pipeline: `podcast.steps.generate` on a real run row (sources -> outline -> transcript -> eSpeak NG
per line -> join -> loudness-normalised MP3 -> result row), in this process, with the run's
progress written to the database at every line as in a worker.
Floor: the same lines, voices, pitches and rates through the eSpeak NG library called directly
(one WAV per line) and a single ffmpeg command that joins them with the same gaps and encodes the
same loudness-normalised 128 kb/s MP3. Rounds alternate so machine noise hits both; medians.

    .venv/bin/python bench/podcast.py [--rounds 3] [--words 1000]

Environment: DATABASE_URL (default a bench_podcast database on the local MariaDB, created and
migrated here), MEDIA_ROOT (default /tmp/bench-podcast-media).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from common import configure, prepare_database
from podcast_fixtures import timed_generation

configure("bench_podcast", MEDIA_ROOT="/tmp/bench-podcast-media")


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def pipeline_round(owner, target_words: int) -> tuple[float, object]:
    seconds, run = timed_generation(owner, target_words)
    return seconds, run.result


# The floor: eSpeak NG's library and one ffmpeg process, nothing else.


def floor_round(lines: list[dict], voices: dict[str, tuple[str, int, int]]) -> tuple[float, Path]:
    from engines.media import ffmpeg_exe
    from engines.speech import SynthCallback, _library, _state

    lib = _library()  # loading and initialising the library is setup, as for the pipeline
    rate = _state["sample_rate"]
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    started = time.perf_counter()
    wavs = [floor_speak(lib, rate, line["text"], *voices[line["speaker"]], work / f"{i}.wav",
                        SynthCallback) for i, line in enumerate(lines)]  # fmt: skip
    gap = work / "gap.wav"
    with wave.open(str(gap), "wb") as silence:
        silence.setnchannels(1)
        silence.setsampwidth(2)
        silence.setframerate(rate)
        silence.writeframes(b"\0" * (round(0.35 * rate) * 2))
    listing = work / "list.txt"
    entries = [str(p) for wav in wavs for p in (wav, gap)][:-1]
    listing.write_text("".join(f"file '{entry}'\n" for entry in entries))
    out = work / "floor.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe",
         "0", "-i", str(listing), "-af", "loudnorm=I=-16:TP=-1.5:LRA=11,aresample=44100",
         "-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "3", "-metadata",
         "title=Benchmark episode", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started, out


def floor_speak(lib, rate, text, voice_id, pitch, words_per_minute, out, callback_type) -> Path:
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)

        def collect(samples, count, _events):
            if count > 0:
                wav.writeframesraw(ctypes.string_at(samples, count * 2))
            return 0

        callback = callback_type(collect)
        lib.espeak_SetSynthCallback(callback)
        lib.espeak_SetVoiceByName(voice_id.encode())
        lib.espeak_SetParameter(1, words_per_minute, 0)  # espeakRATE
        lib.espeak_SetParameter(3, pitch, 0)  # espeakPITCH
        data = text.encode() + b"\0"
        lib.espeak_Synth(data, len(data), 0, 1, 0, 1, None, None)  # POS_CHARACTER, CHARS_UTF8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--words", type=int, default=1000, help="target words of the episode")
    options = parser.parse_args()
    if options.rounds < 1 or options.words < 100:
        fail("--rounds must be at least 1 and --words at least 100.")

    prepare_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from engines.media import probe
    from engines.speech import _voice_id
    from podcast.models import Speaker
    from podcast.profiles import seed_profiles

    seed_profiles()
    owner, _ = get_user_model().objects.get_or_create(username="bench")
    voices = {s.name: (_voice_id(s.voice), s.pitch, s.rate)
              for s in Speaker.objects.filter(profile__slug="default")}  # fmt: skip

    pipeline, floor = [], []
    _, result = pipeline_round(owner, options.words)  # warm-up: imports, caches, first query
    for index in range(options.rounds):
        order = ("pipeline", "floor") if index % 2 == 0 else ("floor", "pipeline")
        for side in order:
            if side == "pipeline":
                seconds, result = pipeline_round(owner, options.words)
                pipeline.append(seconds)
            else:
                seconds, floor_mp3 = floor_round(result.transcript, voices)
                floor.append(seconds)
            print(f"round {index + 1} {side:8s} {seconds:6.2f} s", flush=True)

    words = sum(len(line["text"].split()) for line in result.transcript)
    speakers = len({line["speaker"] for line in result.transcript})
    audio = result.duration_seconds
    floor_audio = probe(floor_mp3).duration_seconds
    ours, raw = statistics.median(pipeline), statistics.median(floor)
    print(f"episode: {words} words, {len(result.transcript)} lines, {speakers} speakers, "
          f"{audio:.1f} s of audio (floor's MP3: {floor_audio:.1f} s)")  # fmt: skip
    print(f"pipeline: median {ours:.2f} s, real-time factor {ours / audio:.4f}")
    print(f"floor:    median {raw:.2f} s, real-time factor {raw / floor_audio:.4f}")
    print(f"ratio pipeline/floor: {ours / raw:.3f} (target <= 1.3)")


if __name__ == "__main__":
    main()
