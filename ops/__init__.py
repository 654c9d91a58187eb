"""Operations: health, metrics, task state, `devserver`, the Celery control package
(`ops.control`) behind run_celery.py, and the sweep of orphaned artifacts (`ops.artifacts`, a
step of the nightly cleanup). It reads runs; runs never imports it."""
