# The two commands: `make up` and `make test`. Both create and use .venv/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DO_NOT_TRACK := 1

.PHONY: install up demo replay-demo process lint test test-fast deployments-yaml bench clean

$(BIN)/sentinel: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $@

install: $(BIN)/sentinel

up: install  ## everything on this machine: Prefect and MLflow servers, the Evidently UI, the deployments, the watcher (Ctrl-C stops)
	$(BIN)/sentinel up

demo: install  ## the guided loop on real reviews, standalone
	$(BIN)/sentinel demo

replay-demo: install  ## the demo's stream replayed with the four built-in policies; outputs in replay-out/
	$(BIN)/sentinel demo --replay --out replay-out

process: install
	$(BIN)/sentinel process

lint: install  ## ruff: pyflakes, import order, docstrings of the library, formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint  ## lint, then unit, integration (real servers, SQLite and PostgreSQL ledgers) and end-to-end, on 2 workers
	$(BIN)/pytest -q -n 2

test-fast: install  ## the unit tier: no server, no mount, about 1.5 minutes on 2 cores
	$(BIN)/pytest -q -n 2 tests/unit

deployments-yaml: install  ## regenerate deployments/prefect.yaml from deployments/declared.py
	$(BIN)/python -m deployments.declared > deployments/prefect.yaml

bench: install  ## figures as ratios against a floor measured in the same run
	$(BIN)/python bench/read_commands.py
	$(BIN)/python bench/process.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/snapshot.py
	$(BIN)/python bench/drift_check.py
	$(BIN)/python bench/flow_tasks.py
	$(BIN)/python bench/retrain.py
	$(BIN)/python bench/tune.py
	$(BIN)/python bench/process_memory.py
	$(BIN)/python bench/up.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf data/batches data/quarantine data/reference data/demo-reference.csv reports evidently replay-out sentinel.db* mlflow.db mlartifacts .prefect *.lock
