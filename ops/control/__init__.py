"""The Celery control package behind run_celery.py: start, stop, watch and empty the Celery side.

cli       the verbs' parser and the one-sentence error handling (run_celery.py calls `main`)
verbs     one function per verb, after Django is set up
services  starting and stopping worker and beat (detached, pid files, warm shutdown)
processes pid files, liveness, process groups, the detached spawn
status    the `status` report and its exit code
queues    queue lengths and purge
tools     Celery's own inspect, Flower / `celery events`, the logs
logwriter the hidden `_log` verb: a size-rotating log writer (standard library only)
errors    OpsError (one sentence, an exit code) and the status exit codes

The worker and beat command lines and the queue list are ops.commandline's; the checks are
ops.checks', shared with the health endpoint and the metrics.
"""
