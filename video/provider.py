"""A client for the remote video provider's job API: plain HTTP that knows nothing of runs.

The provider renders asynchronously (docs/api.md, "Remote video provider"):

    POST {base}/v1/jobs            multipart: "spec" (JSON) + one file per scene frame + "audio"
                                   -> 201 {"id", "status": "pending"}
    GET  {base}/v1/jobs/{id}       -> {"id", "status": "pending" | "running" | "done" | "failed",
                                       "video_url" (when done), "error" (when failed)}
    GET  {video_url}               -> the MP4 (a signed link: no Authorization header needed)

Every call but the download sends `Authorization: Bearer <key>`. Failures raise the engines'
errors, sorted by `engines.transport` (timeouts, dropped connections, 429 and 5xx are transient).
What a job means for a run (waiting, resuming, failing) is `video.steps`' business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import EngineError, TransientEngineError
from engines.transport import request, stream

TIMEOUT_SECONDS = 60.0  # per network operation; an upload or download streams through it
DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class ProviderConfig:
    base_url: str  # empty: no provider, render locally
    key: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.base_url)


@dataclass(frozen=True)
class JobScene:
    """One still of the video: its frame, how long it stays, the subtitle under it."""

    image: Path
    seconds: float
    subtitle: str


@dataclass(frozen=True)
class Job:
    """The provider's answer about a job; `answer` is all of it, for the record."""

    id: str
    status: str
    video_url: str
    error: str
    answer: dict[str, Any]

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> Job:
        return cls(
            id=str(answer.get("id") or ""),
            status=str(answer.get("status") or ""),
            video_url=str(answer.get("video_url") or ""),
            error=str(answer.get("error") or ""),
            answer=answer,
        )


def submit(
    config: ProviderConfig,
    *,
    title: str,
    size: tuple[int, int],
    fps: int,
    scenes: list[JobScene],
    audio: Path,
) -> str:
    """Send the frames and the narration as one job; return the job's id."""
    spec = {
        "title": title,
        "width": size[0],
        "height": size[1],
        "fps": fps,
        "scenes": [
            {"image": f"scene-{i}", "seconds": round(scene.seconds, 3), "subtitle": scene.subtitle}
            for i, scene in enumerate(scenes)
        ],
    }
    files = [
        (f"scene-{i}", (scene.image.name, scene.image.read_bytes(), "image/png"))
        for i, scene in enumerate(scenes)
    ]
    files.append(("audio", (audio.name, audio.read_bytes(), "audio/wav")))
    job = Job.from_answer(
        call(config, "POST", "/v1/jobs", data={"spec": json.dumps(spec)}, files=files)
    )
    if not job.id:
        raise EngineError(f"the provider accepted the job but returned no id: {job.answer}")
    return job.id


def job_status(config: ProviderConfig, job_id: str, *, timeout: float = TIMEOUT_SECONDS) -> Job:
    """Where the provider's job stands."""
    return Job.from_answer(call(config, "GET", f"/v1/jobs/{job_id}", timeout=timeout))


def download(url: str, path: Path) -> None:
    """Stream the provider's MP4 to `path`, never holding it in memory."""
    with (
        stream("GET", url, timeout=TIMEOUT_SECONDS, follow_redirects=True) as answer,
        path.open("wb") as out,
    ):
        for chunk in answer.iter_bytes(DOWNLOAD_CHUNK):
            out.write(chunk)


def call(
    config: ProviderConfig,
    method: str,
    path: str,
    *,
    timeout: float = TIMEOUT_SECONDS,
    **kwargs: Any,
) -> dict[str, Any]:
    """One JSON call to the provider."""
    if not config.configured:
        raise EngineError("no video provider is configured (VIDEO_PROVIDER_URL)")
    headers = {"Authorization": f"Bearer {config.key}"} if config.key else {}
    answer = request(method, config.base_url + path, headers=headers, timeout=timeout, **kwargs)
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientEngineError("the video provider answered with something not a JSON object")
    return body
