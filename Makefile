# Two commands on a fresh machine:
#   make app   set up and run the app on the bundled model
#   make test  set up and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: setup app test
setup: $(VENV)/.runtime

app: $(VENV)/.runtime
	$(BIN)/streamlit run app.py

test: $(VENV)/.dev
	$(BIN)/python -m pytest
