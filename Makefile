# The two commands: `make demo` runs the product, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
export PORT

.PHONY: venv install services services-stop migrate demo test bench soak e2e clean browser

venv: $(BIN)/python

# pip's output goes to var/log/install.log; its last lines are shown when it fails.
INSTALL_LOG := var/log/install.log
QUIET = >>$(INSTALL_LOG) 2>&1 || { tail -n 30 $(INSTALL_LOG); echo "see $(INSTALL_LOG)"; exit 1; }

$(BIN)/python:
	@mkdir -p var/log
	@echo "creating $(VENV) (log: $(INSTALL_LOG))"
	@$(PYTHON) -m venv $(VENV) $(QUIET)
	@$(BIN)/pip install -q --upgrade pip $(QUIET)

# Re-installs only when pyproject.toml changed.
install: $(STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	@mkdir -p var/log
	@echo "installing Python packages into $(VENV) (log: $(INSTALL_LOG))"
	@$(BIN)/pip install -e '.[dev]' $(QUIET)
	@touch $(STAMP)

# Embedded PostgreSQL + Redis, for whichever of DATABASE_URL / REDIS_URL is unset. Data: var/, or
# /var/lib/datacenter/<key>/ for PostgreSQL when its account cannot reach var/ (root, 0700 home).
services: install
	@$(BIN)/python -m datacenter.localservices start
	@$(BIN)/python -m datacenter.localservices where

services-stop:
	@$(BIN)/python -m datacenter.localservices stop

migrate: services
	$(BIN)/python manage.py migrate --noinput

# Starts (and on Ctrl-C stops) the embedded services itself; output goes to var/log/.
demo: install
	@$(BIN)/python -m datacenter.demo

# Browser tests drive Debian's chromium: install it when missing (as root on Debian), as CI does.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# Tests run in TEST_WORKERS processes (pytest-xdist; one more than the cores, as most tests wait on
# pvesim, workers or a browser); each has its own database, queues and prefixes. TEST_WORKERS=0 runs
# them in this process. The slowest tests are listed at the end, so a creeping suite is noticed.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: services browser
	$(BIN)/pytest -n $(TEST_WORKERS) --durations=15

BENCH_PYTEST = $(BIN)/pytest -s -o norecursedirs= -o "python_files=bench_*.py test_*.py"

# Every benchmark but the memory soak, which runs an hour: `make soak`.
bench: services
	$(BENCH_PYTEST) tests/bench --ignore=tests/bench/bench_soak.py

soak: services
	$(BENCH_PYTEST) tests/bench/bench_soak.py

e2e: services browser
	$(BIN)/pytest tests/e2e

clean:
	-$(BIN)/python -m datacenter.localservices forget
	rm -rf var staticfiles
