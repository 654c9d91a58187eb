"""HTTP calls to providers, and the one rule that sorts their failures.

Transient (`TransientEngineError`, retried with backoff): a timeout, a connection that fails or
drops, a 5xx answer, and 429 (rate limited). Permanent (`EngineError`, fails at once with the
provider's reason): any other 4xx. The remote engines and the video provider client both call
through here.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from engines.cancel import Cancelled, current
from engines.errors import EngineError, TransientEngineError


def request(method: str, url: str, *, timeout: float, **kwargs: Any) -> httpx.Response:
    """One call, its answer read whole; `kwargs` go to httpx (json, data, files, headers...).

    A cancelled run (`engines.cancel`) stops waiting for it at once."""

    def call() -> httpx.Response:
        with stream(method, url, timeout=timeout, **kwargs) as response:
            response.read()
        return response

    return current().interruptible(call)


@contextmanager
def stream(method: str, url: str, *, timeout: float, **kwargs: Any) -> Iterator[httpx.Response]:
    """One call whose answer the caller reads as it arrives; failing while reading is transient.

    A client per call: Celery forks workers, and a pooled connection must not cross a fork.
    A cancelled run (`engines.cancel`) shuts the connection down while the answer is read,
    which raises `Cancelled`.
    """
    where = without_query(url)
    token = current()
    token.check()
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream(method, url, **kwargs) as answer,
        ):
            check(answer)
            forget = token.on_cancel(lambda: shut_down(answer))
            try:
                yield answer
            finally:
                forget()
    except httpx.TransportError as exc:
        if token.cancelled:
            raise Cancelled() from exc
        raise transient(exc, where, timeout) from exc


def transient(exc: httpx.TransportError, where: str, timeout: float) -> TransientEngineError:
    """A transport failure as the transient error it is."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientEngineError(f"{where} timed out after {timeout} s")
    if isinstance(exc, httpx.ConnectError):
        return TransientEngineError(f"cannot reach {where}: {exc}")
    return TransientEngineError(f"the connection to {where} failed: {exc}")


def shut_down(answer: httpx.Response) -> None:
    """Wake a thread blocked reading `answer` (from another thread): shut its socket down."""
    network = answer.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if isinstance(sock, socket.socket):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def check(answer: httpx.Response) -> None:
    """Raise for an error status: 5xx and 429 are transient, any other 4xx is permanent."""
    code = answer.status_code
    if code < 400:
        return
    answer.read()
    where = without_query(str(answer.request.url))
    if code >= 500 or code == 429:
        raise TransientEngineError(f"{where} answered {code}: {reason(answer)}")
    raise EngineError(f"{where} refused the request ({code}): {reason(answer)}")


def reason(answer: httpx.Response) -> str:
    """The provider's own words: `error.message` or `error` of a JSON body, else the text."""
    try:
        error = answer.json().get("error", {})
        return str(error.get("message") if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        return answer.text[:200] or answer.reason_phrase


def without_query(url: str) -> str:
    """The URL for a message: a signed link's query holds its signature, which stays out of logs."""
    return str(httpx.URL(url).copy_with(query=None, fragment=None))
