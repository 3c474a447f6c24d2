# The two commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Where `make run` serves: make run PORT=8001 (HOST=0.0.0.0 to listen beyond this machine).
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install browser clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/trainyard run --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The browser tests' Chromium (tests/browser/), from Debian: Playwright drives it, since
# `playwright install` would download its own build. Without apt rights the tests skip,
# except in CI (.ci/run), where they fail.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

clean:
	rm -rf $(VENV) var
