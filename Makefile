# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean-venv

# Re-install when the project's metadata changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

## demo: make the toy dataset, preprocess, train, evaluate, extract, transfer, visualize, report
demo: $(VENV)/.installed
	$(BIN)/samplecnn demo

## test: the whole test suite
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check samplecnn_cli tests benchmarks

## bench: the speed benchmarks (print JSON)
bench: $(VENV)/.installed
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
