"""What every benchmark does first: point at a database and broker of its own, create, migrate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def configure(database: str, *, broker_db: int | None = None, **env: str) -> None:
    """Default DATABASE_URL (a MariaDB database named `database`), the broker and the rest."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", f"mysql://root@127.0.0.1:3306/{database}")
    if broker_db is not None:
        os.environ.setdefault("CELERY_BROKER_URL", f"redis://127.0.0.1:6379/{broker_db}")
    for name, value in {"DEBUG": "true", "DJANGO_SETTINGS_MODULE": "web.settings", **env}.items():
        os.environ.setdefault(name, value)


def database_name() -> str | None:
    """The MariaDB/MySQL database DATABASE_URL names, or None for another engine."""
    url = os.environ["DATABASE_URL"]
    return url.rsplit("/", 1)[1] if url.startswith("mysql://") else None


def mysql(sql: str) -> None:
    """Run one statement as root on the local server; one sentence and exit if it cannot."""
    done = subprocess.run(
        ["mysql", "-h", "127.0.0.1", "-u", "root", "-e", sql],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"MariaDB refused `{sql}`: {done.stderr.strip()}")


def prepare_database(*, fresh: bool = False) -> None:
    """Create the bench database (dropped first when `fresh`) and migrate it."""
    if name := database_name():
        if fresh:
            mysql(f"DROP DATABASE IF EXISTS `{name}`")
        mysql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if migrated.returncode != 0:
        sys.exit(f"Cannot migrate {os.environ['DATABASE_URL']}: {migrated.stderr.strip()}")
