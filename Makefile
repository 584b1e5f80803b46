# make demo: set up .venv (CPU torch first, then amploop) and run the demo on the built-in data.
# make test: the same setup, the services the tests need (.ci/services), then the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.amploop-installed
TORCH := torch==2.13.0

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/amploop demo

test: $(STAMP)
	bash .ci/services
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check amploop tests bench
	$(BIN)/ruff format --check amploop tests bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .amploop .pytest_cache .ruff_cache
