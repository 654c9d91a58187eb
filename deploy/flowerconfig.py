"""Flower's configuration file: `celery -A web flower --conf=deploy/flowerconfig.py`, as
`run_celery.py monitor` and deploy/systemd/mediaruns-flower.service start it. Flower executes it
at start, before it serves: credentials required and never empty, /metrics and /healthcheck
behind the login (ops/flower.py). Flower's options stay on the command line and in FLOWER_*
variables (FLOWER_BASIC_AUTH, FLOWER_READ_ONLY)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, from anywhere

from ops.flower import secure_flower

secure_flower()
