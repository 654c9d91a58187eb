"""How every entry point answers a configuration error: one sentence on stderr and a non-zero
exit, never a traceback.

web/settings.py raises ImproperlyConfigured for a missing or bad variable (SECRET_KEY with DEBUG
off, `DEBUG=maybe`, a number that is not one, a DATABASE_URL with no known scheme). manage.py,
run_celery.py, web/wsgi.py and web/asgi.py (gunicorn, uvicorn), web/celery.py (the `celery`
command) and deploy/gunicorn.conf.py (gunicorn's master, before it binds) turn it into:

    The settings are not usable: SECRET_KEY must be set when DEBUG is off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured

# The exit code of a configuration error (as for a bad command-line argument).
CONFIG_ERROR = 2
# A WSGI/ASGI module that cannot load inside a gunicorn worker exits with gunicorn's own "the
# application failed to load" code instead, so the master stops rather than starting the worker
# again and again.
APP_LOAD_ERROR = 4


def config_error_sentence(exc: ImproperlyConfigured) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"The settings are not usable: {text.rstrip('.') or type(exc).__name__}."


@contextmanager
def exit_on_config_error(code: int = CONFIG_ERROR) -> Iterator[None]:
    """Print a configuration error raised in the block as one sentence and exit with `code`."""
    try:
        yield
    except ImproperlyConfigured as exc:
        print(config_error_sentence(exc), file=sys.stderr, flush=True)
        raise SystemExit(code) from None


def load_settings(code: int = CONFIG_ERROR) -> None:
    """Read the settings now (where their checks run), so a bad variable is one sentence."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    from django.conf import settings

    with exit_on_config_error(code):
        settings.INSTALLED_APPS  # noqa: B018  (the first read imports the settings module)
