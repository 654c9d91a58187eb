"""A local stand-in for a remote video provider, speaking the job API `video.provider` calls.

    POST /v1/jobs                 multipart/form-data: "spec" (JSON: width, height, fps,
                                  scenes [{"image": <file field>, "seconds", "subtitle"}]),
                                  one PNG per scene and "audio" (WAV)  -> 201 {"id", "status"}
    GET  /v1/jobs/<id>            -> 200 {"id", "status": pending|running|done|failed,
                                          "video_url" when done, "error" when failed}; 404
    GET  /v1/jobs/<id>/video.mp4?signature=<hmac>  -> the MP4; 403 on a bad signature

Submit and status need `Authorization: Bearer <key>` (401 otherwise); the download link is
signed instead, as object stores sign theirs. A job stays `pending` until its first status
call, then renders in a thread (`running`) with the same composer the local engine uses, and
ends `done` (or `failed` when the server was told to fail jobs). `busy_submits` makes the first
submits answer 503, as an overloaded provider does; `busy_downloads` the same for the first
downloads. `submits` and `downloads` count the requests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from engines.video import compose


@dataclass
class Job:
    id: str
    folder: Path
    spec: dict
    status: str = "pending"
    error: str = ""
    polls: int = 0
    video: Path | None = None
    done: threading.Event = field(default_factory=threading.Event)


class JobServer:
    """The provider on a free local port; `url` is its base URL."""

    def __init__(self, *, key: str = "provider-test-key", fail_jobs: bool = False):
        self.key = key
        self.fail_jobs = fail_jobs
        self.busy_submits = 0
        self.submits = 0
        self.busy_downloads = 0
        self.downloads = 0
        self.jobs: dict[str, Job] = {}
        self.secret = uuid.uuid4().bytes
        self.folder = Path(tempfile.mkdtemp(prefix="job-server-"))
        self.http = _Server(("127.0.0.1", 0), _Handler)
        self.http.provider = self
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> JobServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.shutdown()
        self.http.server_close()

    def signature(self, job_id: str) -> str:
        return hmac.new(self.secret, job_id.encode(), hashlib.sha256).hexdigest()

    def create(self, spec: dict, files: dict[str, bytes]) -> Job:
        job = Job(id=uuid.uuid4().hex, folder=self.folder, spec=spec)
        job.folder = self.folder / job.id
        job.folder.mkdir()
        for name, data in files.items():
            (job.folder / name).write_bytes(data)
        self.jobs[job.id] = job
        return job

    def start_rendering(self, job: Job) -> None:
        job.status = "running"
        threading.Thread(target=self._render, args=(job,), daemon=True).start()

    def _render(self, job: Job) -> None:
        try:
            if self.fail_jobs:
                raise RuntimeError("the provider's content filter rejected the job")
            spec = job.spec
            scenes = [(job.folder / s["image"], float(s["seconds"])) for s in spec["scenes"]]
            out = job.folder / "video.mp4"
            compose(scenes, job.folder / "audio", out, width=spec["width"],
                    height=spec["height"], fps=spec["fps"],
                    subtitles=[s.get("subtitle", "") for s in spec["scenes"]])  # fmt: skip
            job.video, job.status = out, "done"
        except Exception as exc:
            job.error, job.status = str(exc), "failed"
        finally:
            job.done.set()

    def describe(self, job: Job) -> dict:
        answer = {"id": job.id, "status": job.status}
        if job.status == "done":
            answer["video_url"] = (
                f"{self.url}/v1/jobs/{job.id}/video.mp4?signature={self.signature(job.id)}"
            )
        if job.status == "failed":
            answer["error"] = job.error
        return answer


class _Server(ThreadingHTTPServer):
    provider: JobServer


class _Handler(BaseHTTPRequestHandler):
    server_version = "JobServer/1.0"
    server: _Server

    @property
    def provider(self) -> JobServer:
        return self.server.provider

    def log_message(self, format, *args) -> None:
        pass  # keep test output quiet

    def do_POST(self) -> None:
        if urlparse(self.path).path != "/v1/jobs":
            return self.answer(404, {"error": "no such endpoint"})
        if not self.authorised():
            return self.answer(401, {"error": "missing or wrong API key"})
        self.provider.submits += 1
        if self.provider.submits <= self.provider.busy_submits:
            return self.answer(503, {"error": "busy, try again"})
        try:
            fields = self.multipart()
            spec = json.loads(fields.pop("spec"))
            missing = [s["image"] for s in spec["scenes"] if s["image"] not in fields]
        except (KeyError, TypeError, ValueError) as exc:
            return self.answer(400, {"error": f"bad job: {exc}"})
        if missing or "audio" not in fields:
            return self.answer(400, {"error": f"missing files: {missing or ['audio']}"})
        job = self.provider.create(spec, fields)
        return self.answer(201, {"id": job.id, "status": job.status})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        is_job = parts[:2] == ["v1", "jobs"] and len(parts) > 2
        job = self.provider.jobs.get(parts[2]) if is_job else None
        if job is None:
            return self.answer(404, {"error": "no such job"})
        if len(parts) == 4 and parts[3] == "video.mp4":
            return self.send_video(job, parse_qs(url.query).get("signature", [""])[0])
        if not self.authorised():
            return self.answer(401, {"error": "missing or wrong API key"})
        job.polls += 1
        if job.status == "pending":
            self.provider.start_rendering(job)
            return self.answer(200, {"id": job.id, "status": "pending"})
        return self.answer(200, self.provider.describe(job))

    def send_video(self, job: Job, signature: str) -> None:
        if not hmac.compare_digest(signature, self.provider.signature(job.id)):
            return self.answer(403, {"error": "bad signature"})
        self.provider.downloads += 1
        if self.provider.downloads <= self.provider.busy_downloads:
            return self.answer(503, {"error": "busy, try again"})
        if job.video is None:
            return self.answer(409, {"error": "the video is not ready"})
        data = job.video.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.provider.key}"

    def multipart(self) -> dict[str, bytes]:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise ValueError("expected multipart/form-data")
        parts: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                parts[name] = payload
        return parts

    def answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
