# loopline: the two commands are `make run` and `make test`; both build .venv by themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint venv system-test db-start db-stop psql reset help

help:
	@echo "make run    set up, then run the main job on the embedded warehouse"
	@echo "make test   set up, then run the whole test suite"
	@echo "make lint   ruff, and the import contracts of the layers (import-linter)"
	@echo "make psql   open psql on the embedded warehouse"
	@echo "make reset  stop the embedded services and delete all local state (.loopline/)"

venv: $(STAMP)

# Re-install whenever a requirements file or the package metadata changes.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/loopline demo

# The browser (Chromium + its driver) and Redis: installed with apt-get where no password is
# needed, else a stop in the first seconds with the command to run (before the virtualenv).
system-test:
	$(PYTHON) include/loopline/dev/system.py test

test: system-test $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check dags plugins include tests benchmarks
	$(BIN)/ruff format --check dags plugins include tests benchmarks
	$(BIN)/lint-imports

db-start: $(STAMP)
	$(BIN)/loopline db start

db-stop: $(STAMP)
	$(BIN)/loopline db stop

psql: $(STAMP)
	$(BIN)/loopline db psql

reset: $(STAMP)
	$(BIN)/loopline db stop || true
	rm -rf .loopline
