import os

from django.core.asgi import get_asgi_application

from web.startup import APP_LOAD_ERROR, exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
# A configuration error is one sentence (web/startup.py); the exit code stops gunicorn's master.
with exit_on_config_error(APP_LOAD_ERROR):
    application = get_asgi_application()
