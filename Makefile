# Each target bootstraps .venv on a machine with nothing installed by hand and
# reinstalls the project whenever its packaging files change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONF ?= etc/monkey

.PHONY: run test bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=64" wheel

EXAMPLES := $(wildcard docs/examples/*/setup.cfg)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml $(EXAMPLES)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	for f in $(EXAMPLES); do $(BIN)/python -m pip install --quiet -e "$$(dirname $$f)" || exit 1; done
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/monkey -c $(CONF)

check: $(STAMP)
	$(BIN)/monkey check -c $(CONF)

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
