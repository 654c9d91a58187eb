"""Celery's own tools behind the verbs (`inspect`, Flower or `celery events`), and the logs."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
from typing import NoReturn

from django.conf import settings

from ops.commandline import celery_command

from .errors import OpsError
from .processes import chosen, log_dir, log_path
from .services import require_broker


def inspect(args: argparse.Namespace) -> int:
    """Celery's own `inspect`, after a broker check that turns a dead broker into one sentence."""
    require_broker()
    command = celery_command("inspect", args.what, "--timeout", str(args.timeout))
    return subprocess.run(command, cwd=settings.BASE_DIR).returncode


def monitor(args: argparse.Namespace) -> int:
    require_broker()
    if importlib.util.find_spec("flower") is None:
        print("Flower is not installed; showing `celery events` instead.")
        return exec_celery(["events"])
    from ops.flower import basic_auth_problem  # credentials required, neither part empty

    problem = basic_auth_problem(settings.FLOWER_BASIC_AUTH)
    if problem:
        raise OpsError(problem, 2)
    state = log_dir() / "flower.db"
    mode = ", read-only" if args.read_only else ""
    print(f"Flower on http://127.0.0.1:{args.port}/ (state in {state}{mode}); Ctrl-C stops it.")
    # Flower reads FLOWER_BASIC_AUTH from the environment itself: no password in `ps` output.
    # deploy/flowerconfig.py puts /metrics and /healthcheck behind the same login (ops/flower.py);
    # --read_only is Flower's own: every operation (revoke, pool, rate limit, apply) answers 403.
    return exec_celery([
        "flower", f"--conf={settings.BASE_DIR / 'deploy' / 'flowerconfig.py'}",
        "--address=127.0.0.1", f"--port={args.port}",
        "--persistent=True", f"--db={state}", "--state_save_interval=60000",
        *(["--read_only=True"] if args.read_only else []),
    ])  # fmt: skip


def exec_celery(arguments: list[str]) -> NoReturn:
    os.chdir(settings.BASE_DIR)
    command = celery_command(*arguments)
    os.execv(command[0], command)


def logs(args: argparse.Namespace) -> int:
    names = chosen(args.service)
    paths = [log_path(name) for name in names if log_path(name).exists()]
    if not paths:
        raise OpsError(f"No log yet in {log_dir()}; start the {' and '.join(names)} first.")
    if args.follow:
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", *map(str, paths)])
    for path in paths:
        if len(paths) > 1:
            print(f"==> {path} <==")
        print("\n".join(path.read_text(errors="replace").splitlines()[-args.lines :]))
    return 0
