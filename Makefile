# tierwise: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-deps lint typecheck unit js-test device-web bench clean

# The device tier's JavaScript module (tierwise-device) and the onnxruntime-web files
# the gateway serves to pages, installed from the npm registry by its lockfile.
WEB := src/tierwise/webdevice/web

# System packages (apt-get as root; otherwise the command to run): scripts/system-deps.sh.
$(BIN)/python:
	PYTHON=$(PYTHON) scripts/system-deps.sh demo
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed stamps are re-made when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory device-web; \
	else echo "npm not found: the device page (tierwise demo --serve) needs scripts/system-deps.sh test"; fi
	$(BIN)/tierwise demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

$(WEB)/vendor/.built: $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build.mjs
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	touch $@

device-web: $(WEB)/vendor/.built

js-test: device-web
	cd $(WEB) && node --test test/*.test.js

unit: $(VENV)/.installed-dev device-web
	$(BIN)/pytest

test-deps:
	PYTHON=$(PYTHON) scripts/system-deps.sh test

test: test-deps lint typecheck js-test unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .tierwise \
		$(WEB)/node_modules $(WEB)/vendor
