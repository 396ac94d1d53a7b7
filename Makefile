# Two commands set everything up on a fresh machine that has Python 3.11+ and make:
#   make lab    create .venv, install the kit, open JupyterLab on the first notebook
#   make test   create .venv, install the kit with its test tools, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: lab test bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "amilab needs Python 3.11 or newer (pandas 3); this is " + sys.version.split()[0] + ". Try: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changed since the last install.
$(VENV)/.installed-lab: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# As root (a container, a CI box) JupyterLab refuses to start unless told it may.
lab: $(VENV)/.installed-lab
	$(BIN)/jupyter lab notebooks/00-start-here.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# The parser benchmark (docs/benchmarks.md) runs in its own bench/.venv, so the
# parsers it is compared with never become dependencies of amilab.
bench/.venv/.installed: pyproject.toml bench/requirements.txt
	test -x bench/.venv/bin/python || $(PYTHON) -m venv bench/.venv
	bench/.venv/bin/python -m pip install --quiet -e . -r bench/requirements.txt
	@touch $@

bench: bench/.venv/.installed
	bench/.venv/bin/python bench/parse.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
