# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SIMULATOR_PORT ?= 8081

.PHONY: run test fuzz lint format migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## run: install, migrate, seed demo data, start the provider simulator and the server
run: $(VENV)/.runtime
	HOST=$(HOST) PORT=$(PORT) SIMULATOR_PORT=$(SIMULATOR_PORT) BIN=$(BIN) \
		bash scripts/dev-run.sh

## test: linters, migration check and the whole suite with coverage (floor 90%)
test: $(VENV)/.dev lint
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run \
		>/dev/null || \
		(echo "Model changes without a migration: run makemigrations" && exit 1)
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)
	@if [ "$(FUZZ)" != 0 ]; then $(MAKE) --no-print-directory fuzz; fi

## fuzz: Schemathesis against the live server (gunicorn + provider simulator), about
## 1.5 minutes (cut off at 200 s); output in run/fuzz/. `make test FUZZ=0` skips it.
fuzz: $(VENV)/.dev
	BIN=$(BIN) bash scripts/api-fuzz.sh

## lint: ruff, the dependency contracts (.importlinter) and the type check
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DEBUG=1 $(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(VENV)/.runtime
	DEBUG=1 $(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) .coverage htmlcov .pytest_cache .ruff_cache

# --- Performance and reliability (bench/; see the README) ---
.PHONY: bench soak
BENCH_ARGS ?= --profile
SOAK_ARGS ?=

## bench: POST /api/bets throughput, latency and cost under gunicorn, PostgreSQL and
## Redis, with its baselines; reports in bench/results/bench-latest.{json,md}
bench: $(VENV)/.dev
	bash bench/services.sh
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## soak: mixed traffic, provider faults, server kills and a deploy, PostgreSQL and
## Redis failures (its own instances) in both stake modes, then settle_pending,
## reconcile --fix, check_ledger; bench/results/soak-latest.{json,md}
soak: $(VENV)/.dev
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

.PHONY: bench-growth
GROWTH_ARGS ?=

## bench-growth: the pages and commands whose cost grows with the data, on 2 M bets
## and 5 M API log rows built in SQL (database betting_growth, kept for --reuse);
## bench/results/growth-latest.{json,md}
bench-growth: $(VENV)/.dev
	bash bench/services.sh
	$(BIN)/python -m bench.growth $(GROWTH_ARGS)
