# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements.lock
# The lock pins every package exactly; a site-wide pip constraints file must not change or block that.
PIP    := PIP_CONSTRAINT=/dev/null $(BIN)/python -m pip

.PHONY: demo test lint bench lock clean-venv

# The environment is exactly requirements.lock (hash-checked), then samplecnn itself without dependencies.
# A changed lock makes a new venv, so nothing the lock no longer names stays behind.
$(VENV)/.locked: $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r $(LOCK)
	touch $@

$(VENV)/.installed: $(VENV)/.locked pyproject.toml
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PIP) check
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

## lock: re-resolve requirements.lock from pyproject.toml's ranges (newest versions), every platform, with hashes
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra torchaudio --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" -o $(LOCK)

clean-venv:
	rm -rf $(VENV)
