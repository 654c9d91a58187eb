# The two commands a newcomer needs: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install install-dev lint format bench clean

$(VENV)/.installed: requirements.txt
	scripts/bootstrap.sh
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	scripts/bootstrap.sh dev
	touch $(VENV)/.installed $@

# A development .env (DEBUG on), so manage.py works in this checkout without exporting anything.
.env:
	cp .env.example .env

install: $(VENV)/.installed .env

install-dev: $(VENV)/.installed-dev .env

## run: web + workers (generation and system) + beat on SQLite and a local Redis, until Ctrl-C;
## the web port is PORT (default 8000): `make run PORT=9000`
run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py devserver

## test: the whole suite against MariaDB/MySQL and Redis (DATABASE_URL, CELERY_BROKER_URL override)
test: install-dev
	$(VENV)/bin/ruff check .
	DEBUG=true EXTRA_APPS=runs.tests.sleeper $(VENV)/bin/mypy .
	DEBUG=true EXTRA_APPS=runs.tests.sleeper $(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true EXTRA_APPS=runs.tests.sleeper $(VENV)/bin/mypy .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install-dev
	$(PY) bench/lifecycle.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache db-test.sqlite3
