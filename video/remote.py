"""A remote video provider that renders asynchronously: submit a job, poll it, download the MP4.

The provider speaks a small job API (docs/api.md, "Remote video provider"):

    POST {base}/v1/jobs            multipart: "spec" (JSON) + one file per scene frame + "audio"
                                   -> 201 {"id", "status": "pending"}
    GET  {base}/v1/jobs/{id}       -> {"id", "status": "pending" | "running" | "done" | "failed",
                                       "video_url" (when done), "error" (when failed)}
    GET  {video_url}               -> the MP4 (a signed link: no Authorization header needed)

Every call but the download sends `Authorization: Bearer $VIDEO_PROVIDER_KEY`. The provider is
used when VIDEO_PROVIDER_URL is set; the run then waits (`waiting`, with the job id) and the scan
calls `poll` every 15 s, which moves the run on when the job ends.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import httpx

from engines.errors import EngineError, TransientEngineError
from runs import canvas, lifecycle, outbox
from runs.models import Priority, RunStatus

from .models import VideoRun

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 60.0  # per network operation; an upload or download streams through it
# The scan polls each waiting run in turn, holding its row lock: a slow provider must not stall it.
POLL_TIMEOUT_SECONDS = 10.0
DOWNLOAD_CHUNK = 1 << 20


def base_url() -> str:
    return os.environ.get("VIDEO_PROVIDER_URL", "").rstrip("/")


def configured() -> bool:
    return bool(base_url())


def headers() -> dict[str, str]:
    key = os.environ.get("VIDEO_PROVIDER_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def submit(run: VideoRun, ctx: lifecycle.RunContext, scenes: list[tuple[Path, float]],
           audio: Path) -> str:  # fmt: skip
    """Send the frames and narration as one job and leave the run `waiting` on it."""
    width, height = run.size
    spec = {
        "title": run.title,
        "width": width,
        "height": height,
        "fps": run.fps,
        "scenes": [
            {"image": f"scene-{i}", "seconds": round(seconds, 3), "subtitle": scene["text"]}
            for i, ((_, seconds), scene) in enumerate(zip(scenes, run.result.script, strict=True))
        ],
    }
    files = [(f"scene-{i}", (path.name, path.read_bytes(), "image/png"))
             for i, (path, _) in enumerate(scenes)]  # fmt: skip
    files.append(("audio", (audio.name, audio.read_bytes(), "audio/wav")))
    answer = call("POST", "/v1/jobs", data={"spec": json.dumps(spec)}, files=files)
    job_id = str(answer.get("id") or "")
    if not job_id:
        raise EngineError(f"the provider accepted the job but returned no id: {answer}")
    canvas.wait_remote(ctx, job_id, "Rendering at the provider.")
    logger.info("run %s waits on provider job %s", run.pk, job_id)
    return job_id


def poll(run: VideoRun) -> None:
    """Ask the provider about the run's job and move the run on; the scan calls this per run.

    pending/running: stay `waiting` (heartbeat refreshed). done: back to `running`, and a part on
    the video queue downloads the MP4. failed: the run fails with the provider's reason.
    A provider that cannot be reached leaves the run waiting for the next scan.
    """
    run.refresh_from_db()
    if run.status != RunStatus.WAITING:
        return
    if run.cancel_requested:
        canvas.end_waiting(run, RunStatus.CANCELLED, message="Cancelled while waiting.")
        return
    try:
        job = call("GET", f"/v1/jobs/{run.remote_job_id}", timeout=POLL_TIMEOUT_SECONDS)
    except TransientEngineError as exc:
        logger.warning("run %s: provider unreachable, will poll again: %s", run.pk, exc)
        return
    except EngineError as exc:
        canvas.end_waiting(run, RunStatus.FAILED, message=str(exc)[:255], error=str(exc))
        return
    settle(run, job)


def settle(run: VideoRun, job: dict) -> None:
    state = job.get("status")
    if state in ("pending", "running"):
        canvas.note_waiting(run, f"The provider's job is {state}.")
    elif state == "done" and job.get("video_url"):
        from video.tasks import fetch_remote_video  # tasks import this module

        part = fetch_remote_video.si(str(run.pk), run.attempt, job["video_url"])
        priority = outbox.message_priority(Priority.HIGH)  # a started run finishes first
        canvas.resume_remote(run, part.set(priority=priority))
    else:
        reason = job.get("error") or f"unexpected job status {state!r}"
        message = f"The provider failed the job: {reason}"[:255]
        canvas.end_waiting(run, RunStatus.FAILED, message=message, error=json.dumps(job))


def download(url: str, path: Path) -> None:
    """Stream the provider's MP4 to `path`, never holding it in memory."""
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT_SECONDS, follow_redirects=True) as answer:
            check(answer)
            with path.open("wb") as out:
                for chunk in answer.iter_bytes(DOWNLOAD_CHUNK):
                    out.write(chunk)
    except httpx.TransportError as exc:
        raise TransientEngineError(f"downloading the provider's video failed: {exc}") from exc


def call(method: str, path: str, *, timeout: float = TIMEOUT_SECONDS, **kwargs) -> dict:
    """One JSON call to the provider; 5xx and network errors are transient, 4xx are not."""
    if not configured():
        raise EngineError("VIDEO_PROVIDER_URL is not set")
    try:
        answer = httpx.request(method, base_url() + path, headers=headers(), timeout=timeout,
                               **kwargs)  # fmt: skip
    except httpx.TransportError as exc:
        raise TransientEngineError(f"the video provider did not answer: {exc}") from exc
    check(answer)
    try:
        return answer.json()
    except ValueError as exc:
        raise TransientEngineError("the video provider answered with something not JSON") from exc


def check(answer: httpx.Response) -> None:
    if answer.status_code >= 500 or answer.status_code == 429:
        raise TransientEngineError(f"the video provider answered {answer.status_code}")
    if answer.status_code >= 400:
        answer.read()
        raise EngineError(f"the video provider refused: {answer.status_code} {answer.text[:200]}")
