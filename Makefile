# The two commands: `make demo` runs the product, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: venv install services services-stop migrate demo test bench e2e clean

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

test: services
	$(BIN)/pytest

bench: services
	$(BIN)/pytest tests/bench -s -o norecursedirs= -o "python_files=bench_*.py test_*.py"

e2e: services
	$(BIN)/pytest tests/e2e

clean: services-stop
	rm -rf var staticfiles
