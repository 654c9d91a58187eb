#!/usr/bin/env python
"""Submit throughput: POST /api/podcasts/ of the project against the seeds' minimal endpoint.

Both sides run under gunicorn with 2 worker processes (gthread, 8 threads each) on the same
MariaDB database and Redis broker, and wrk (-t2 -c16, installed from Debian when missing) posts the
same body to each, in alternating pairs (the order flips every round, the first round is a warm-up
and is discarded). The anchor (bench/anchor/) reads the JSON, inserts one row and sends one task by
name; the project authenticates the token, validates the profiles and sources, applies the
idempotency and active-run checks, inserts the run and dispatches it after the commit. Throttles
and the active-run cap are set high enough not to answer 429; every other check runs.

    .venv/bin/python bench/api.py [--rounds 6] [--seconds 10]

Prints per side the median req/s, the median p99 latency and the CPU per request (gunicorn's
processes and MariaDB's, from /proc), then `ratio req/s: X` and `ratio p99: Y` (project over
anchor). Environment: DATABASE_URL (default a bench_api database on the local MariaDB, created and
migrated here), CELERY_BROKER_URL (default redis://127.0.0.1:6379/11, flushed every round).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, configure, prepare_database

configure("bench_api", broker_db=11)

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
WRK_ARGS = ["-t2", "-c16", "--latency"]


@dataclass
class Round:
    requests_per_second: float
    p99_ms: float
    cpu_ms_per_request: float
    database_cpu_ms_per_request: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="measured rounds per side")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per round")
    options = parser.parse_args()

    ensure_wrk()
    prepare_database(fresh=True)
    token, body = prepare_rows()
    subprocess.run(
        [sys.executable, str(ROOT / "bench/anchor/create_table.py")],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "anchor.settings"}, check=True,
    )  # fmt: skip

    servers = {"anchor": start_anchor(), "project": start_project()}
    scripts = {
        "anchor": wrk_script(body, {}),
        "project": wrk_script(body, {"Authorization": f"Token {token}"}),
    }
    results: dict[str, list[Round]] = {"anchor": [], "project": []}
    try:
        for index in range(options.rounds + 1):
            order = ["anchor", "project"] if index % 2 == 0 else ["project", "anchor"]
            for side in order:
                measured = measure(servers[side], scripts[side], options.seconds)
                if index > 0:  # the first round warms both up
                    results[side].append(measured)
                print(f"round {index} {side:8s} {describe(measured)}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    report(results)


def report(results: dict[str, list[Round]]) -> None:
    medians = {
        side: {
            field: statistics.median(getattr(r, field) for r in rounds)
            for field in Round.__dataclass_fields__
        }
        for side, rounds in results.items()
    }
    for side, figures in medians.items():
        print(f"{side:8s} median {describe(Round(**figures))}")
    project, anchor = medians["project"], medians["anchor"]
    print(f"ratio req/s: {project['requests_per_second'] / anchor['requests_per_second']:.2f}")
    print(f"ratio p99: {project['p99_ms'] / anchor['p99_ms']:.2f}")


def describe(measured: Round) -> str:
    return (
        f"{measured.requests_per_second:7.1f} req/s  p99 {measured.p99_ms:6.1f} ms  "
        f"cpu {measured.cpu_ms_per_request:5.2f} ms/req  "
        f"db cpu {measured.database_cpu_ms_per_request:5.2f} ms/req"
    )


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it from Debian")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        if subprocess.run(command, check=False).returncode != 0:
            sys.exit("Cannot install wrk (apt-get install wrk); install it and run again.")


def prepare_rows() -> tuple[str, str]:
    """The project's bench user, its token and one source; the body both sides receive."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from podcast.models import Source

    user, _ = get_user_model().objects.get_or_create(username="bench")
    token, _ = Token.objects.get_or_create(user=user)
    source = Source.objects.create(owner=user, title="Bench", content="A short source. " * 20)
    body = {
        "episode_profile": "default",
        "speaker_profile": "two_hosts",
        "episode_name": "Bench episode",
        "source_ids": [str(source.pk)],
    }
    return token.key, json.dumps(body)


def wrk_script(body: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = Path(tempfile.mkstemp(prefix="bench-api-", suffix=".lua")[1])
    path.write_text("\n".join(lines) + "\n")
    return path


class Server:
    def __init__(self, command: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{command[-1]} did not start: {self.process.stderr.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{command[-1]} did not answer on port {port} within 30 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/podcasts/"

    def cpu_seconds(self) -> float:
        """User and system CPU of gunicorn's master and workers so far."""
        import psutil

        parent = psutil.Process(self.process.pid)
        own = parent.cpu_times()  # children_*: workers gunicorn recycled (max_requests) and reaped
        total = own.user + own.system + own.children_user + own.children_system
        for process in parent.children(recursive=True):
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_anchor() -> Server:
    port = free_port()
    command = [
        GUNICORN, "--pythonpath", str(ROOT / "bench"), "-w", "2", "-k", "gthread", "--threads", "8",
        "-b", f"127.0.0.1:{port}", "anchor.wsgi",
    ]  # fmt: skip
    return Server(command, {"DJANGO_SETTINGS_MODULE": "anchor.settings"}, port)


def start_project() -> Server:
    port = free_port()
    env = {
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "8",
        "DEBUG": "false",
        "SECRET_KEY": "bench-api-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "THROTTLE_SUBMIT_RATE": "off",
        "RUN_ACTIVE_LIMIT_PER_USER": str(10**9),
        "LOG_LEVEL": "WARNING",
    }
    return Server([GUNICORN, "--config", "deploy/gunicorn.conf.py"], env, port)


def database_cpu_seconds() -> float:
    import psutil

    for process in psutil.process_iter(["name"]):
        if process.info["name"] in ("mariadbd", "mysqld"):
            times = process.cpu_times()
            return times.user + times.system
    return 0.0


def empty_tables() -> None:
    """Each round starts from empty run tables on both sides (no worker drains them, and the
    project's active-run count would otherwise grow with every round)."""
    from django.db import connection

    from podcast.models import PodcastRun

    PodcastRun.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM anchor_anchorrun")


def measure(server: Server, script: Path, seconds: int) -> Round:
    import redis

    empty_tables()
    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    cpu, database_cpu = server.cpu_seconds(), database_cpu_seconds()
    done = subprocess.run(
        ["wrk", *WRK_ARGS, f"-d{seconds}s", "-s", str(script), server.url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu, database_cpu = server.cpu_seconds() - cpu, database_cpu_seconds() - database_cpu
    out = done.stdout
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        sys.exit(f"{server.url} answered {match.group(1)} errors:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Round(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p99_ms=latency_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        cpu_ms_per_request=1000 * cpu / max(total, 1),
        database_cpu_ms_per_request=1000 * database_cpu / max(total, 1),
    )


def latency_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


if __name__ == "__main__":
    main()
