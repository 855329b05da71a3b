# salesloop: `make run` starts everything on this machine, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt bench soak clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Build the virtualenv and install salesloop with its dev tools

run: $(STAMP) ## Start the whole system on embedded Postgres and Tansu (Ctrl-C stops it)
	$(BIN)/salesloop dev

# Two workers, each with its own Postgres, broker and services; a file's tests stay on one worker
# (tests/conftest.py groups them). `pytest` alone runs in one process.
test: lint ## Lint, type-check and run every test against real Postgres and Kafka
	$(BIN)/pytest -n 2 --dist loadgroup --durations=20

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check services devstack tests bench migrations
	$(BIN)/ruff format --check services devstack tests bench migrations
	$(BIN)/mypy

fmt: $(STAMP) ## Format and fix what ruff can
	$(BIN)/ruff format services devstack tests bench migrations
	$(BIN)/ruff check --fix services devstack tests bench migrations

soak: $(STAMP) ## Soak-size tests: every fault at full size (>= 100 000 events, figures printed), more demo seeds
	SALESLOOP_SOAK_EVENTS=$${SALESLOOP_SOAK_EVENTS:-100000} $(BIN)/pytest -m soak -s -q --timeout 1800

bench: $(STAMP) ## Benchmarks (numbers go to bench/results.json and bench/README.md); BENCH_ARGS="--runs 3"
	@test -x bench/.venv/bin/python || $(PYTHON) -m venv bench/.venv
	@cmp -s bench/requirements.txt bench/.venv/.requirements || { \
		bench/.venv/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt && \
		cp bench/requirements.txt bench/.venv/.requirements; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean: ## Remove the virtualenv and the dev state
	rm -rf $(VENV) .salesloop
