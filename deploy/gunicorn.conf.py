"""Gunicorn for the web app: `gunicorn --config deploy/gunicorn.conf.py` (the app, web.wsgi, is
named below). Used by deploy/systemd/mediaruns-web.service, the supervisor web program and the
serving test (tests/test_serving.py); docs/operations.md, "Serving in production", explains it.

A slow client cannot block it:
- gthread workers: each process serves WEB_THREADS requests at once, and a connection that has
  sent nothing yet waits in the worker's event loop, not on a thread;
- a client that stalls its request body (or stops reading the answer) for WEB_CLIENT_TIMEOUT
  seconds loses its connection, which frees the thread (pre_request below);
- request lines and headers are bounded (limit_request_*);
- nginx in front (deploy/nginx/mediaruns.conf) buffers each whole request before it reaches
  gunicorn, so on the internet only nginx ever waits for a slow client.

Environment (all optional): PORT (8000) on 127.0.0.1, or WEB_BIND (a full address, e.g.
0.0.0.0:8000 or unix:/run/mediaruns/web.sock); WEB_CONCURRENCY worker processes (the number of
CPUs, at least 2); WEB_THREADS per process (8); WEB_CLIENT_TIMEOUT seconds (30). Any other
gunicorn setting: GUNICORN_CMD_ARGS or a command-line flag, which win over this file. The
project's .env is read as the Django settings read it (the environment wins); a change to it
takes effect on a restart, not on a reload (HUP).
Each thread keeps one database connection (CONN_MAX_AGE): allow WEB_CONCURRENCY x WEB_THREADS
per web machine in MySQL's max_connections, besides the workers'.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

import environ

ROOT = Path(__file__).resolve().parent.parent


def _whole_number(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        print(f"The settings are not usable: {name} must be a whole number of at least 1, "
              f"not {raw!r}.", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return int(raw)


def _check_django_settings() -> None:
    """Run the Django settings file once here, in the master, before it binds: a bad variable
    (no SECRET_KEY with DEBUG off) is then one sentence and exit 2 (as web/startup.py words it
    for the other entry points), not a worker that fails to boot. It is run, not imported, so no
    module of the project stays loaded in the master: HUP gives the workers fresh code."""
    if os.environ.get("DJANGO_SETTINGS_MODULE", "web.settings") != "web.settings":
        return  # another settings module: web/wsgi.py answers for it
    from django.core.exceptions import ImproperlyConfigured

    try:
        runpy.run_path(str(ROOT / "web" / "settings.py"))
    except ImproperlyConfigured as exc:
        text = " ".join(str(exc).split()).rstrip(".")
        print(f"The settings are not usable: {text}.", file=sys.stderr)
        raise SystemExit(2) from None


if (ROOT / ".env").exists():
    environ.Env.read_env(str(ROOT / ".env"))  # as web/settings.py does: PORT, WEB_* from it too
_check_django_settings()

wsgi_app = "web.wsgi:application"
chdir = str(ROOT)
bind = [os.environ.get("WEB_BIND") or f"127.0.0.1:{_whole_number('PORT', 8000)}"]
proc_name = "mediaruns-web"

worker_class = "gthread"
workers = _whole_number("WEB_CONCURRENCY", max(2, os.cpu_count() or 1))
threads = _whole_number("WEB_THREADS", 8)
# Connections a process holds open at once (requests in progress, idle keep-alives, clients
# still sending): beyond it the process stops accepting and the others take the new ones.
worker_connections = 1000
# Seconds a kept-alive connection may stay idle between two requests.
keepalive = 5
# Restart a worker whose main loop has not reported for this long (a hung process). In gthread
# this does not bound a request: a slow view holds its thread, not the process.
timeout = 60
# On TERM or HUP, requests in progress get this long to finish (systemd's TimeoutStopSec and
# supervisor's stopwaitsecs wait longer).
graceful_timeout = 25
# A fresh process every ~20,000 requests, so a slow leak never grows for days. Not fewer: a
# process starts in about a second of CPU (Django, DRF, Celery imported anew), which at 2,000 was
# half a millisecond of every request, and under load a restart every few seconds.
max_requests = 20_000
max_requests_jitter = 2_000

# Seconds a client may send nothing while gunicorn waits for its request body, and the bound
# on one write of the answer to it; then its connection is dropped.
client_timeout = _whole_number("WEB_CLIENT_TIMEOUT", 30)
# Bounds on the request head (gunicorn answers 400 or 431 past them): the longest URL the API
# needs is far shorter; 50 headers of 8 KB each.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# Behind a proxy on this machine: X-Forwarded-Proto from 127.0.0.1 is believed (Django's
# SECURE_PROXY_SSL_HEADER reads the same header; nginx sets it).
forwarded_allow_ips = "127.0.0.1,::1"

accesslog = "-"
errorlog = "-"
# No `gunicornc` control socket: systemd and supervisor signal the master directly.
control_socket_disable = True


def pre_request(worker: Any, req: Any) -> None:
    """Bound every socket read (and write) of this request by client_timeout: the app reads
    the body after this hook, and a client that stops sending it now times out instead of
    holding the thread until it goes away. (Gunicorn clears the timeout between requests.)"""
    sock = getattr(req.unreader, "sock", None)
    if sock is not None:
        sock.settimeout(client_timeout)
