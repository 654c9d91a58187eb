"""Queue lengths and `purge`: the project's queues as the broker holds them."""

from __future__ import annotations

import argparse
import sys

from celery import current_app
from kombu.exceptions import ChannelError

from ops.checks import runs_by_status
from ops.commandline import project_queues
from runs.models import RunStatus

from .errors import OpsError
from .services import require_broker


def queue_lengths(queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (a passive declare; a queue never used yet counts 0)."""
    lengths = {}
    with current_app.connection_for_write() as conn:
        for queue in queues:
            try:
                with conn.channel() as channel:  # a failed passive declare spoils its channel
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:
                lengths[queue] = 0
    return lengths


def purge_queues(queues: list[str]) -> int:
    """What `celery purge -Q` does, counted per queue (Redis purges every priority level)."""
    purged = 0
    with current_app.connection_for_write() as conn:
        for queue in queues:
            try:
                with conn.channel() as channel:
                    purged += channel.queue_purge(queue) or 0
            except ChannelError:
                pass  # a queue that was never declared holds nothing
    return purged


def queued_runs() -> int:
    return sum(counts.get(RunStatus.QUEUED, 0) for counts in runs_by_status().values())


def confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise OpsError("purge asks for confirmation; pass --yes (or -f) when not at a terminal.")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise OpsError("Nothing purged.")


def purge(args: argparse.Namespace) -> int:
    queues = project_queues()
    if args.queue and args.queue not in queues:
        raise OpsError(f"--queue must be one of {', '.join(queues)}, not {args.queue!r}.", 2)
    queues = [args.queue] if args.queue else queues
    require_broker()
    waiting = sum(queue_lengths(queues).values())
    if waiting and not args.yes:
        confirm(f"Delete {waiting} waiting message(s) from {', '.join(queues)}?")
    purged = purge_queues(queues)
    print(f"Purged {purged} message(s) from {', '.join(queues)}.")
    print(
        f"Runs are not deleted: the {queued_runs()} run(s) now queued keep their rows, and the "
        "scan sends a queued run whose message is gone again within a scan or two (it compares "
        "queued runs with what the broker holds); the admin's re-dispatch action sends one now."
    )
    return 0
