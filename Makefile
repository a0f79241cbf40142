# The two commands: `make demo` runs the product, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: venv install services services-stop migrate demo test bench e2e clean browser

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-installs only when pyproject.toml changed.
install: $(STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Embedded PostgreSQL + Redis under var/, for whichever of DATABASE_URL / REDIS_URL is unset.
services: install
	$(BIN)/python -m datacenter.localservices start

services-stop:
	$(BIN)/python -m datacenter.localservices stop

migrate: services
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python -m datacenter.demo

# Browser tests drive Debian's chromium: install it when missing (as root on Debian), as CI does.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: services browser
	$(BIN)/pytest

bench: services
	$(BIN)/pytest tests/bench -s -o norecursedirs= -o "python_files=bench_*.py test_*.py"

e2e: services browser
	$(BIN)/pytest tests/e2e

clean: services-stop
	rm -rf var staticfiles
