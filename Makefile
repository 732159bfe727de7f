# The two commands the README opens with: `make run` and `make test`.
# Each creates .venv/ with a Python >= 3.11 and installs what it needs.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "mailpool needs Python >= 3.11 (python3.11 or newer on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/mailpool dev

# The AWS CLI pins its own botocore, so it lives in a venv of its own (for localsqs tests).
$(VENV)/awscli/bin/aws: | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/awscli
	$(VENV)/awscli/bin/python -m pip install --quiet awscli

test: $(VENV)/.installed-dev $(VENV)/awscli/bin/aws
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	MAILPOOL_AWS_CLI=$(VENV)/awscli/bin/aws $(BIN)/pytest

clean:
	rm -rf $(VENV) var
