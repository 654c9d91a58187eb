"""A cancel token stops an engine call in progress: ffmpeg, eSpeak, a provider's HTTP request."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import cancel, speech
from engines.cancel import Cancelled, CancelToken
from engines.media import run_ffmpeg
from engines.transport import request, stream

LONG_TEXT = " ".join(["The lighthouse keeper counted every wave that broke on the rocks."] * 80)


def cancel_after(token: CancelToken, seconds: float) -> None:
    timer = threading.Timer(seconds, token.cancel)
    timer.daemon = True
    timer.start()


def timed(work) -> float:
    started = time.monotonic()
    with pytest.raises(Cancelled):
        work()
    return time.monotonic() - started


def test_a_cancelled_ffmpeg_is_killed_at_once(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_after(token, 0.5)
    # Ten minutes of tone, read in real time: ffmpeg would run for ten minutes.
    args = ["-re", "-f", "lavfi", "-i", "sine=duration=600", str(tmp_path / "tone.wav")]
    assert timed(lambda: run_ffmpeg(args, cancel=token)) < 3
    assert not token._processes  # nothing left registered


def test_the_active_token_reaches_ffmpeg_without_being_passed(tmp_path: Path) -> None:
    token = CancelToken()
    cancel_after(token, 0.5)
    args = ["-re", "-f", "lavfi", "-i", "sine=duration=600", str(tmp_path / "tone.wav")]
    with cancel.active(token):
        assert timed(lambda: run_ffmpeg(args)) < 3
    assert cancel.current() is cancel.NEVER


def test_an_ffmpeg_started_after_the_cancel_never_runs(tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_ffmpeg(["-f", "lavfi", "-i", "sine=duration=1", str(tmp_path / "t.wav")], cancel=token)
    assert not (tmp_path / "t.wav").exists()


def test_a_cancelled_espeak_synthesis_stops_within_a_chunk(tmp_path: Path) -> None:
    out = tmp_path / "long.wav"
    started = time.monotonic()
    whole = speech.synthesize(LONG_TEXT, voice="en-us", pitch=50, rate=170, out_path=out)
    took = time.monotonic() - started
    assert whole > 60  # minutes of speech: long enough to cancel in the middle
    token = CancelToken()
    cancel_after(token, took / 4)
    call = lambda: speech.synthesize(  # noqa: E731
        LONG_TEXT, voice="en-us", pitch=50, rate=170, out_path=out, cancel=token
    )
    assert timed(call) < took / 4 + 1


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers after 30 s, or sends 30 s of a body a little at a time."""

    def do_GET(self) -> None:
        if self.path == "/slow-answer":
            time.sleep(30)
        self.send_response(200)
        self.send_header("Content-Length", str(30 * 1024))
        self.end_headers()
        for _ in range(30):
            try:
                self.wfile.write(b"x" * 1024)
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_cancelled_provider_request_stops_waiting_at_once(slow_server: str) -> None:
    token = CancelToken()
    cancel_after(token, 0.5)
    with cancel.active(token):
        assert timed(lambda: request("GET", f"{slow_server}/slow-answer", timeout=60)) < 2


def test_a_cancelled_download_stops_between_chunks(slow_server: str, tmp_path: Path) -> None:
    token = CancelToken()
    cancel_after(token, 1.5)

    def download() -> None:
        with (
            stream("GET", f"{slow_server}/body", timeout=60) as answer,
            (tmp_path / "body").open("wb") as out,
        ):
            for chunk in answer.iter_bytes():
                out.write(chunk)

    with cancel.active(token):
        assert timed(download) < 3
    assert 0 < (tmp_path / "body").stat().st_size < 30 * 1024
