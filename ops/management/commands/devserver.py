"""`make run`: a Redis if none answers, migrations, the media bucket (MEDIA_STORAGE=s3), seed
data, an admin, then web, the two worker nodes (generation and system, as run_celery.py starts
them) and beat."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.commandline import asgi_command, beat_command, redis_server_command, worker_layout

# The embedded Redis keeps its append-only file here (git-ignored), so messages queued in
# development survive a Ctrl-C or a crash, as production's Redis does (deploy/redis/).
REDIS_DATA_DIR = settings.BASE_DIR / "var" / "redis"


class Command(BaseCommand):
    help = "Run the web server, the Celery workers and beat together until Ctrl-C (development)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port", type=int, default=None, help="web server port (default: PORT, else 8000)"
        )
        parser.add_argument(
            "--concurrency", type=int, default=2, help="the generation worker's processes"
        )

    def handle(self, *args: str, port: int | None, concurrency: int, **options: object) -> None:
        port = port if port is not None else port_from_environment()
        settings.LOG_DIR.mkdir(parents=True, exist_ok=True)
        redis_process = self.ensure_redis()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_bucket")  # MEDIA_STORAGE=s3: the bucket, made when missing
        if "sync_schedules" in get_commands():
            call_command("sync_schedules")
        username, password = self.ensure_admin()
        processes = self.start_services(port, concurrency)
        self.stdout.write(
            f"\nWeb:    http://127.0.0.1:{port}/  (admin at /admin/, API docs at /api/docs/)\n"
            f"Admin:  username {username!r}, password {password!r}\n"
            f"Logs:   {settings.LOG_DIR}/dev-*.log\nPress Ctrl-C to stop web, workers and beat.\n"
        )
        try:
            self.wait(processes)
        finally:
            self.stop([*processes.values(), *([redis_process] if redis_process else [])])

    def ensure_redis(self) -> subprocess.Popen[bytes] | None:
        """Start a local redis-server when the broker URL points here and nothing answers; it
        keeps an append-only file under var/redis/, fsynced every second."""
        url = urlsplit(settings.CELERY_BROKER_URL)
        if url.scheme != "redis" or redis_answers(settings.CELERY_BROKER_URL):
            return None
        if url.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError(f"The broker at {settings.CELERY_BROKER_URL} does not answer.")
        REDIS_DATA_DIR.mkdir(parents=True, exist_ok=True)
        command = redis_server_command(url.port or 6379, data_dir=REDIS_DATA_DIR)
        self.stdout.write(
            f"No Redis answered; starting {command[0]} on port {url.port or 6379} "
            f"(append-only file in {REDIS_DATA_DIR})."
        )
        process = subprocess.Popen(
            command,
            stdout=open(settings.LOG_DIR / "dev-redis.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for _ in range(50):
            if redis_answers(settings.CELERY_BROKER_URL):
                return process
            time.sleep(0.1)
        raise CommandError("The local redis-server did not start; see logs/dev-redis.log.")

    def ensure_admin(self) -> tuple[str, str]:
        """A local superuser; its password is kept in logs/ so every start can print it."""
        secret_file = settings.LOG_DIR / "dev-admin-password.txt"
        users = get_user_model().objects
        if users.filter(username="admin").exists() and secret_file.exists():
            return "admin", secret_file.read_text().strip()
        password = secrets.token_urlsafe(12)
        admin, _ = users.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        secret_file.write_text(password)
        secret_file.chmod(0o600)
        return "admin", password

    def start_services(self, port: int, concurrency: int) -> dict[str, subprocess.Popen[bytes]]:
        """Web, and the worker nodes (generation and system) and beat run_celery.py would start."""
        # uvicorn: the API, the admin and the live event streams (SSE) from one process.
        commands = {"web": asgi_command(port)}
        for node in worker_layout(concurrency=concurrency):
            commands[node.name] = node.command(hostname=f"{node.prefix}@%h")
        commands["beat"] = beat_command()
        return {name: self.spawn(name, command) for name, command in commands.items()}

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = open(settings.LOG_DIR / f"dev-{name}.log", "ab")  # noqa: SIM115
        self.stdout.write(f"Starting {name}: {' '.join(command[1:])}")
        return subprocess.Popen(
            command, cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT
        )

    def wait(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            dead = next(name for name, p in processes.items() if p.poll() is not None)
            self.stderr.write(f"{dead} exited; stopping the others (see logs/).")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping web, workers and beat...")

    def stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def port_from_environment() -> int:
    """The web port: PORT (from the environment or .env, as `make run PORT=9000` sets it), 8000."""
    raw = os.environ.get("PORT", "").strip()
    if not raw:
        return 8000
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise CommandError(f"PORT must be a port number (1-65535), not {raw!r}.")
    return int(raw)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
