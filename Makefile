# Two commands on a fresh machine (Debian/Ubuntu with Python 3.11):
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

.PHONY: setup app test system-deps benchmark bench-env
setup: $(VENV)/.runtime

app: $(VENV)/.runtime
	$(BIN)/streamlit run app.py

# The browser test drives Debian's Chromium (Playwright's own download cannot
# be used here); the PDF test reads reports back with poppler's pdftotext.
# Installed when missing and we are root; otherwise those tests skip.
system-deps:
	@{ command -v chromium && command -v pdftotext; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null; } || \
	  echo "chromium or poppler-utils not installed: the browser and PDF-text tests will be skipped"

test: $(VENV)/.dev system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

benchmark: $(VENV)/.runtime
	$(BIN)/python benchmarks/latency.py --model models/brain-tumor-mri-ensemble

# A separate environment for the side-by-side benchmark (benchmarks/peers.py):
# the peer package is never installed where the app or the tests run.
.venv-bench/.ready: requirements.txt benchmarks/requirements.txt pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet -r requirements.txt -e . -r benchmarks/requirements.txt
	touch $@

bench-env: .venv-bench/.ready
