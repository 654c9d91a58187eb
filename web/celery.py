import os

from celery import Celery

from web.broker import install_transport
from web.startup import load_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
install_transport()  # before the app makes its first broker connection

app = Celery("web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def read_settings_first(sender: Celery, **kwargs: object) -> None:
    """Before Celery reads its configuration from the Django settings: a bad variable is one
    sentence and exit 2 (web/startup.py), not a traceback from deep inside the `celery` command."""
    load_settings()
