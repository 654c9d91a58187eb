#!/usr/bin/env bash
# Thin entry to run_celery.py, with the same verbs: ./start_celery.sh both|worker|beat|status|stop|
# restart|purge|monitor|inspect ...|logs [worker|worker_system|beat] [N] [--follow]. `worker` and
# `both` start two worker nodes, the generation worker and the system worker (maintenance). See
# docs/operations.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ -x .venv/bin/python ]]; then
    PYTHON=.venv/bin/python
else
    PYTHON=${PYTHON:-python3}
fi

# Beat reads its schedules from the database: create any that are missing (never overwriting an
# admin's edit) before it starts. The command comes with the schedules module.
case "${1:-}" in
    beat | both | restart)
        if "$PYTHON" manage.py help sync_schedules >/dev/null 2>&1; then
            "$PYTHON" manage.py sync_schedules
        fi
        ;;
esac

# exec: the script becomes run_celery.py, so a signal sent to it reaches the Python side.
exec "$PYTHON" run_celery.py "$@"
