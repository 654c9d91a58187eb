#!/usr/bin/env python3
"""Operate the Celery side of the project: `python run_celery.py --help` lists the verbs.

The entry only: it re-executes itself with .venv's Python when this interpreter lacks Django and
Celery (so it works from a plain shell, before Django is importable), then hands the verbs to
`ops.control` (docs/operations.md).
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path

from ops.control.logwriter import write_log  # standard library only, like this file

ROOT = Path(__file__).resolve().parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def has_project_packages() -> bool:
    return find_spec("django") is not None and find_spec("celery") is not None


def reexec_in_venv() -> None:
    """Become .venv's Python running this script, once (.venv's python may be this one)."""
    if VENV_PYTHON.exists() and not os.environ.get("RUN_CELERY_REEXEC"):
        os.environ["RUN_CELERY_REEXEC"] = "1"  # .venv's python is a symlink: guard the loop
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def main(argv: list[str]) -> int:
    if argv[:1] == ["_log"]:  # the detached services' log writer (ops.control.processes)
        write_log(argv[1])
        return 0
    if not has_project_packages():
        reexec_in_venv()
        print(
            "Django and Celery are not installed for this Python and there is no .venv; "
            "run `make install` (or `pip install -r requirements.txt`) first.",
            file=sys.stderr,
        )
        return 1
    from ops.control.cli import main as run_verb  # imports Django: only once it is importable
    from web.startup import load_settings

    load_settings()  # a configuration error is one sentence and exit 2, as for manage.py
    return run_verb(argv, debug=bool(os.environ.get("RUN_CELERY_DEBUG")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
