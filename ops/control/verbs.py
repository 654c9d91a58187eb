"""One function per verb, called once Django is set up."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ops.commandline import project_queues

from . import queues, services, status, tools
from .errors import OpsError
from .processes import SERVICES, WORKERS

VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "worker": lambda args: services.start(args, WORKERS),
    "beat": lambda args: services.start(args, ("beat",)),
    "both": lambda args: services.start(args, SERVICES),
    "restart": services.restart,
    "stop": services.stop,
    "status": status.status,
    "purge": queues.purge,
    "inspect": tools.inspect,
    "monitor": tools.monitor,
    "logs": tools.logs,
}


def dispatch(args: argparse.Namespace) -> int:
    check_queues(getattr(args, "queues", None))
    return VERBS[args.verb](args)


def check_queues(listed: str | None) -> None:
    """`--queues` names only the project's queues (settings.CELERY_TASK_QUEUES)."""
    known = project_queues()
    unknown = set(listed.split(",")) - set(known) if listed else set()
    if unknown:
        raise OpsError(
            f"--queues has unknown queue(s) {', '.join(sorted(unknown))}; "
            f"the project's are {', '.join(known)}.",
            2,
        )
