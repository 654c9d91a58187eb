"""The video pipeline as a Celery canvas on the `video` queue, all of it one run.

    video.generate   claims the run, then sends
    chain(video.write_script,
          group(video.draw_characters, video.speak_narration),   # a chord: both, then
          video.compose)                                         # compose, which ends the run

Every part carries (run id, attempt) and runs through `runs.canvas.execute_part`, which skips it
unless the run is still running on that attempt. What a part hands on is recorded on the run as
checkpoints (`video.steps`), so a later attempt's canvas calls no engine twice; the result rows
are written by the part that ends the run, in the transaction that marks it succeeded.

With a remote provider configured, compose hands the frames and narration to it instead (a job
submitted once per run) and the run waits; the scan calls `poll_remote` (registered in
VideoConfig.ready()), and when the provider is done `video.fetch_remote` downloads the MP4 and
ends the run.
"""

from __future__ import annotations

from functools import partial

from celery import chain, group, shared_task
from django.conf import settings

from runs import canvas, outbox
from runs.models import Priority

from . import steps
from .models import VideoRun

SOFT_LIMIT, HARD_LIMIT = settings.TASK_TIME_LIMITS["video"]
LIMITS = {"soft_time_limit": SOFT_LIMIT, "time_limit": HARD_LIMIT}


@shared_task(name="video.generate", bind=True, **LIMITS)
def generate_video(self, run_id: str) -> None:
    canvas.start_canvas(self, VideoRun, run_id, pipeline)


def pipeline(run: VideoRun):
    """The canvas of one attempt of a run.

    Its parts go at the highest message priority, whatever the run's: a started run is finished
    before new ones start. A part left waiting in the queue behind other work keeps no heartbeat,
    and the timeout check would take its run for dead after RUN_STALE_AFTER_SECONDS.
    """
    args = (str(run.pk), run.attempt)
    priority = outbox.message_priority(Priority.HIGH)
    return chain(
        write_script.si(*args).set(priority=priority),
        group(
            draw_characters.si(*args).set(priority=priority),
            speak_narration.si(*args).set(priority=priority),
        ),
        compose_video.si(*args).set(priority=priority),
    )


@shared_task(name="video.write_script", bind=True, **LIMITS)
def write_script(self, run_id: str, attempt: int) -> None:
    canvas.execute_part(self, VideoRun, run_id, attempt, steps.write_script)


# The chord's header parts keep a result: the chord fires compose once both results are stored.
@shared_task(name="video.draw_characters", bind=True, ignore_result=False, **LIMITS)
def draw_characters(self, run_id: str, attempt: int) -> None:
    canvas.execute_part(self, VideoRun, run_id, attempt, steps.draw_characters)


@shared_task(name="video.speak_narration", bind=True, ignore_result=False, **LIMITS)
def speak_narration(self, run_id: str, attempt: int) -> None:
    canvas.execute_part(self, VideoRun, run_id, attempt, steps.speak_narration)


@shared_task(name="video.compose", bind=True, **LIMITS)
def compose_video(self, run_id: str, attempt: int) -> None:
    canvas.execute_part(self, VideoRun, run_id, attempt, steps.compose_video, last=True)


@shared_task(name="video.fetch_remote", bind=True, **LIMITS)
def fetch_remote_video(self, run_id: str, attempt: int, url: str) -> None:
    collect = partial(steps.collect_video, url=url)
    canvas.execute_part(self, VideoRun, run_id, attempt, collect, last=True)


def poll_remote(run: VideoRun) -> None:
    """The scan's poll of a waiting run: once the provider is done, send the part collecting it.

    `runs.canvas.resume_remote` moves the run back to `running` first, so of two scans polling
    the same run only one sends the part.
    """
    url = steps.poll_provider(run)
    if url:
        part = fetch_remote_video.si(str(run.pk), run.attempt, url)
        priority = outbox.message_priority(Priority.HIGH)  # a started run finishes first
        canvas.resume_remote(run, part.set(priority=priority))
