"""Operations: health, metrics, task state, `devserver` and the Celery control package
(`ops.control`) behind run_celery.py. It reads runs; runs never imports it."""
