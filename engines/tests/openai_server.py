"""A local stand-in for an OpenAI-compatible provider: chat completions, speech and images.

    with OpenAIServer() as server:
        config = RemoteConfig(base_url=server.base_url, ...)
        server.fail_next(500)            # or 400, or "timeout" (sleeps past the client's timeout)
        server.fail_next(503, path="/audio/speech", after=2)   # the third speech request only
        ...
        assert server.requests[-1].path == "/v1/chat/completions"

Chat replies answer the JSON request the engines send (task outline / transcript / video_script);
set `server.chat_content` to send a fixed content string instead (e.g. something unparseable).

It behaves like the servers users run, when asked to:
- `streamed_wav=True`: speech comes as OpenAI, Kokoro-FastAPI and ffmpeg-based servers stream it,
  a 24 kHz WAV whose RIFF and data sizes are 0xFFFFFFFF, sent without a Content-Length;
- `voices=("af_heart", ...)`: only the server's own voice names are known (Kokoro's, LocalAI's);
  any other voice, OpenAI's six included, is refused with a 400 as those servers do;
- `context_chars=N`: the model reads only the last N characters of a chat (Ollama's default
  context cuts silently); `server.truncated` counts the chats it cut, and a cut request, no
  longer JSON, gets an answer the engines cannot use.
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import threading
import time
import wave
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageDraw

SPEECH_RATE = 16000
STREAMED_RATE = 24000  # what OpenAI and Kokoro send
UNKNOWN_SIZE = 0xFFFFFFFF
SECONDS_PER_WORD = 0.25


@dataclass
class Fault:
    """`times` requests (to a path ending in `path`, if given) answer `failure`, after `after`
    such requests went through."""

    failure: int | str
    times: int = 1
    path: str | None = None
    after: int = 0

    def matches(self, path: str) -> bool:
        return self.path is None or path.endswith(self.path)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class OpenAIServer:
    """Threaded HTTP server on a free port; a context manager that starts and stops it."""

    def __init__(
        self,
        *,
        timeout_delay_seconds: float = 3.0,
        streamed_wav: bool = False,
        voices: tuple[str, ...] | None = None,
        context_chars: int | None = None,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.failures: list[Fault] = []
        self.chat_content: str | None = None
        self.timeout_delay_seconds = timeout_delay_seconds
        self.streamed_wav = streamed_wav
        self.voices = voices
        self.context_chars = context_chars
        self.truncated = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def fail_next(
        self, failure: int | str, times: int = 1, *, path: str | None = None, after: int = 0
    ) -> None:
        """Make the next `times` requests answer this status code, or "timeout".

        With `path`, only requests to a path ending in it count (others pass); with `after`, that
        many of them go through first.
        """
        with self._lock:
            self.failures.append(Fault(failure, times, path, after))

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def read_within_context(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat as a model with a context of `context_chars` sees it: its end only."""
        limit = self.context_chars
        messages = body.get("messages") or []
        total = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
        if limit is None or total <= limit or not messages:
            return body
        with self._lock:
            self.truncated += 1
        last = dict(messages[-1])
        last["content"] = str(last.get("content", ""))[-limit:]
        return {**body, "messages": [last]}

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_failure(self, path: str) -> int | str | None:
        with self._lock:
            fault = next((f for f in self.failures if f.matches(path)), None)
            if fault is None:
                return None
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self.failures.remove(fault)
            return fault.failure


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            server.requests.append(RecordedRequest(self.path, dict(self.headers), body))
            failure = server._next_failure(self.path)
            if failure == "timeout":
                time.sleep(server.timeout_delay_seconds)
                return self._send_json(500, {"error": {"message": "too late"}})
            if isinstance(failure, int):
                return self._send_json(
                    failure,
                    {"error": {"message": f"simulated {failure}", "type": "invalid_request_error"}},
                )
            self._route(body)

        def _route(self, body: dict[str, Any]) -> None:
            if self.path.endswith("/chat/completions"):
                body = server.read_within_context(body)
                content = server.chat_content or json.dumps(chat_reply(body), ensure_ascii=False)
                message = {"role": "assistant", "content": content}
                self._send_json(
                    200,
                    {
                        "id": "chatcmpl-stub",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    },
                )
            elif self.path.endswith("/audio/speech"):
                voice = str(body.get("voice", ""))
                if server.voices is not None and voice not in server.voices:
                    known = ", ".join(server.voices)
                    refusal = f"Voice '{voice}' not found. Available voices: {known}"
                    return self._send_json(400, {"error": {"message": refusal}})
                if server.streamed_wav:
                    return self._stream(streamed_speech_wav(body.get("input", ""), voice))
                self._send(200, "audio/wav", speech_wav(body.get("input", ""), voice))
            elif self.path.endswith("/images/generations"):
                png = base64.b64encode(image_png(body.get("prompt", ""))).decode()
                self._send_json(200, {"created": int(time.time()), "data": [{"b64_json": png}]})
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})

        def _stream(self, data: bytes) -> None:
            """No Content-Length: the body ends when the connection closes, in pieces."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Connection", "close")
                self.end_headers()
                for start in range(0, len(data), 4096):
                    self.wfile.write(data[start : start + 4096])
                    self.wfile.flush()
                self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a simulated timeout); nothing to answer

    return Handler


def chat_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A plausible JSON answer to the engines' chat request."""
    try:
        request = json.loads(body["messages"][-1]["content"])
    except (KeyError, IndexError, TypeError, ValueError):
        return {"text": "Hello from the stub."}
    task = request.get("task")
    if task == "outline":
        count = int(request.get("sections") or 3)
        return {
            "sections": [
                {"title": f"Part {i + 1}", "points": [f"Point {i + 1}.{j + 1}." for j in range(2)]}
                for i in range(count)
            ]
        }
    if task == "transcript":
        names = [s["name"] for s in request.get("speakers", [])] or ["Host"]
        texts = [
            request.get("intro") or "Welcome.",
            "Here is the main idea.",
            "That makes sense.",
            request.get("outro") or "Goodbye.",
        ]
        return {
            "lines": [{"speaker": names[i % len(names)], "text": t} for i, t in enumerate(texts)]
        }
    if task == "video_script":
        cast = [c.get("name", "Narrator") for c in request.get("characters") or []] or ["Narrator"]
        count = int(request.get("scenes") or 3)
        return {
            "scenes": [
                {
                    "character": cast[i % len(cast)],
                    "text": f"Scene {i + 1} line.",
                    "description": f"A bright scene number {i + 1}.",
                }
                for i in range(count)
            ]
        }
    return {"text": "Hello from the stub."}


def speech_wav(text: str, voice: str) -> bytes:
    """A real mono 16-bit WAV: a tone whose pitch depends on the voice, length on the text."""
    seconds = min(10.0, max(0.3, SECONDS_PER_WORD * len(text.split())))
    frequency = 180 + zlib.crc32(voice.encode()) % 200
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / SPEECH_RATE)))
        for i in range(int(seconds * SPEECH_RATE))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_RATE)
        wav.writeframes(frames)
    return buffer.getvalue()


def streamed_speech_wav(text: str, voice: str) -> bytes:
    """The same tone at 24 kHz with the header a streaming server writes: sizes 0xFFFFFFFF."""
    seconds = min(10.0, max(0.3, SECONDS_PER_WORD * len(text.split())))
    frequency = 180 + zlib.crc32(voice.encode()) % 200
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * i / STREAMED_RATE)))
        for i in range(int(seconds * STREAMED_RATE))
    )
    fmt = struct.pack("<HHIIHH", 1, 1, STREAMED_RATE, STREAMED_RATE * 2, 2, 16)
    header = (
        b"RIFF" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", UNKNOWN_SIZE)
    )  # fmt: skip
    return header + frames


def image_png(prompt: str) -> bytes:
    """A real 256x256 PNG, coloured by the prompt."""
    digest = zlib.crc32(prompt.encode())
    color = (digest & 0xFF, (digest >> 8) & 0xFF, (digest >> 16) & 0xFF)
    image = Image.new("RGB", (256, 256), color)
    ImageDraw.Draw(image).ellipse((64, 64, 192, 192), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
