# agentperm — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test graphviz clean

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Graphviz `dot` renders SVG graphs; installed with apt-get when missing and we may (root or sudo).
graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Graphviz (apt-get install graphviz)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null \
		|| echo "warning: could not install Graphviz; SVG output will be unavailable (DOT still works)"; \
	else echo "note: Graphviz 'dot' not found; install it with 'sudo apt-get install graphviz' for SVG graphs"; fi

run: setup
	@mkdir -p reports/out
	$(BIN)/agentperm check fixtures/agency --format json --output reports/out/agency-check.json
	$(BIN)/agentperm check fixtures/agency
	@echo "JSON result: $$(pwd)/reports/out/agency-check.json"

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) reports/out .pytest_cache
