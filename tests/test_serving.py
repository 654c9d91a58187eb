"""Production serving: gunicorn with the shipped configuration and production settings (DEBUG
off) serves the static files and keeps answering while clients stall; the nginx site agrees with
the app's limits; the development server's database connections stay bounded under a burst.

Real servers: gunicorn and runserver in subprocesses, the MariaDB test database, the suite's Redis.
"""

from __future__ import annotations

import os
import re
import runpy
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from rest_framework.authtoken.models import Token

from ops.testing import (
    PYTHON,
    ROOT,
    ServiceProcess,
    free_port,
    service_env,
    start_web,
    wait_for,
)

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-enough-0123456789abcdef",
    "ALLOWED_HOSTS": "127.0.0.1",
    "EXTRA_APPS": "",
}
# What nginx adds in front (deploy/nginx/mediaruns.conf): with DEBUG off, a plain-http request
# would be redirected to https.
BEHIND_NGINX = {"X-Forwarded-Proto": "https"}
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_SITE = ROOT / "deploy" / "nginx" / "mediaruns.conf"
# Small on purpose: the stalling clients below outnumber every thread of every process.
WORKERS, THREADS = 2, 4


class Gunicorn:
    def __init__(self, process: ServiceProcess, port: int):
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, timeout: float = 30) -> httpx.Response:
        return httpx.get(self.base + path, headers=BEHIND_NGINX, timeout=timeout)


@pytest.fixture(scope="module")
def production_web(django_db_setup, broker_url, tmp_path_factory) -> Iterator[Gunicorn]:
    """gunicorn --config deploy/gunicorn.conf.py, as the systemd unit starts it, after
    collectstatic into a STATIC_ROOT of its own, as the unit's ExecStartPre does."""
    port = free_port()
    env = service_env(
        CELERY_BROKER_URL=broker_url,
        STATIC_ROOT=str(tmp_path_factory.mktemp("static")),
        PORT=str(port),
        WEB_CONCURRENCY=str(WORKERS),
        WEB_THREADS=str(THREADS),
        WEB_CLIENT_TIMEOUT="3",
        **PRODUCTION,
    )
    collected = subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    process = ServiceProcess(
        [PYTHON, "-m", "gunicorn", "--config", str(GUNICORN_CONF)], env, "gunicorn"
    )
    server = Gunicorn(process, port)

    def answers() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{process.log()[-3000:]}")
        try:
            return server.get("/api/health/", timeout=5).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=60, what="gunicorn to answer")
        yield server
    finally:
        process.stop()


@pytest.mark.django_db(transaction=True)
def test_static_files_are_served_with_debug_off(production_web):
    css = production_web.get("/static/admin/css/base.css")
    assert css.status_code == 200, production_web.process.log()[-2000:]
    assert "text/css" in css.headers["Content-Type"]
    assert "body" in css.text

    docs = production_web.get("/api/docs/")
    assert docs.status_code == 200
    bundle = re.search(r'src="(/static/[^"]*swagger-ui-bundle[^"]*\.js)"', docs.text)
    assert bundle, docs.text  # the offline Swagger UI, from drf-spectacular-sidecar
    script = production_web.get(bundle.group(1))
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text


@pytest.mark.django_db(transaction=True)
def test_clients_that_stall_their_body_do_not_stop_health(production_web):
    """More clients than the server has threads send their headers and the start of a body,
    then nothing. Health still answers, and each stalled client is let go (its body timed out)
    instead of holding a thread for as long as it likes."""
    stalled = []
    try:
        for _ in range(WORKERS * THREADS + 4):
            client = socket.create_connection(("127.0.0.1", production_web.port), timeout=10)
            client.sendall(
                b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Forwarded-Proto: https\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            stalled.append(client)

        health = production_web.get("/api/health/", timeout=60)
        assert health.status_code in (200, 503)
        assert health.json()["database"] == "ok"

        for client in stalled:
            client.settimeout(60)
            answer = client.recv(1024)  # a timeout here fails the test
            assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:200]
    finally:
        for client in stalled:
            client.close()
    assert production_web.get("/api/health/").status_code in (200, 503)


def test_the_nginx_site_agrees_with_the_app_and_gunicorn(monkeypatch):
    site = NGINX_SITE.read_text()
    for name in ("PORT", "WEB_BIND"):
        monkeypatch.delenv(name, raising=False)
    saved = dict(os.environ)  # the configuration reads .env into the environment
    try:
        gunicorn = runpy.run_path(str(GUNICORN_CONF))
    finally:
        os.environ.clear()
        os.environ.update(saved)

    def directive(name: str) -> str:
        found = re.search(rf"^\s*{name}\s+([^;]+);", site, re.MULTILINE)
        assert found, f"{name} is missing from {NGINX_SITE}"
        return found.group(1).strip()

    def size(value: str) -> int:
        found = re.fullmatch(r"(\d+)([kKmM]?)", value)
        assert found, value
        number, unit = found.groups()
        return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]

    from podcast.models import SOURCE_MAX_UPLOAD_BYTES

    body_limit = size(directive("client_max_body_size"))
    # nginx lets through what the app accepts, so the app's own JSON 413 names its limit.
    assert body_limit > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert body_limit > SOURCE_MAX_UPLOAD_BYTES + 64 * 1024  # a file and its multipart form
    assert directive("proxy_request_buffering") == "on"
    assert directive("client_body_timeout")
    assert directive("proxy_set_header X-Forwarded-Proto") == "$scheme"
    # The upstream is gunicorn's default address, and nginx's header buffers hold what gunicorn
    # accepts.
    assert f"server {gunicorn['bind'][0]};" in site
    assert size(directive("large_client_header_buffers").split()[1]) >= max(
        gunicorn["limit_request_field_size"], gunicorn["limit_request_line"]
    )
    assert "127.0.0.1" in gunicorn["forwarded_allow_ips"]
    # nginx serves collectstatic's output at STATIC_URL itself.
    static_root = Path(settings.STATIC_ROOT).relative_to(settings.BASE_DIR)
    static_url = "/" + settings.STATIC_URL.strip("/") + "/"
    assert re.search(
        rf"location {re.escape(static_url)} \{{\s*alias /srv/mediaruns/{static_root}/;", site
    )


# -- The development server ------------------------------------------------------------------


def connections_to_test_database() -> int:
    """Server connections to this test database, counted by MariaDB itself (but this one)."""
    counter = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with counter.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()",
                [counter.settings_dict["NAME"]],
            )
            return int(cursor.fetchone()[0])
    finally:
        counter.close()


def burst(base: str, headers: dict[str, str], name: str, size: int = 50) -> tuple[list[int], int]:
    """`size` concurrent posts; their statuses, and the most connections seen meanwhile."""
    peak = 0
    statuses: list[int] = []
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, connections_to_test_database())
            done.wait(0.05)

    def post(number: int) -> None:
        body = {"title": f"{name} #{number}", "content": "Bees keep their hive warm."}
        for _ in range(3):  # runserver's listen backlog is 10: a refused connection is retried
            try:
                reply = httpx.post(f"{base}/api/sources/", json=body, headers=headers, timeout=60)
            except httpx.TransportError:
                continue
            statuses.append(reply.status_code)
            return

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=post, args=(number,)) for number in range(size)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=120)
    done.set()
    watcher.join()
    return statuses, peak


@pytest.mark.skipif(connection.vendor != "mysql", reason="counts MySQL/MariaDB server connections")
@pytest.mark.django_db(transaction=True)
def test_the_development_server_keeps_its_database_connections_bounded(broker_url, user):
    """runserver answers each request on a new thread; 50 concurrent posts, twice, leave no
    connection behind them (before the fix, each request's thread left its connection open
    until MariaDB's 151 were gone)."""
    token = Token.objects.create(user=user).key
    web, base = start_web(broker_url)
    try:
        headers = {"Authorization": f"Token {token}"}
        warm = httpx.get(f"{base}/api/sources/", headers=headers, timeout=30)
        assert warm.status_code == 200, web.log()[-2000:]
        baseline = connections_to_test_database()

        for number in (1, 2):
            statuses, peak = burst(base, headers, f"Burst {number}")
            assert len(statuses) == 50, web.log()[-3000:]
            assert all(status in (201, 429) for status in statuses), statuses
            assert peak <= baseline + 50  # at most one per request in flight
            wait_for(
                lambda: connections_to_test_database() <= baseline,
                timeout=30,
                what=f"the connections of burst {number} to close",
            )
    finally:
        web.stop()
