# agentperm — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test graphviz browser clean

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

# Headless Chromium drives the HTML report's browser tests (they skip, saying why, without it).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium for the report's browser tests (apt-get install chromium)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		|| echo "warning: could not install Chromium; the browser tests will be skipped"; \
	else echo "note: /usr/bin/chromium not found; install it with 'sudo apt-get install chromium' to run the browser tests"; fi

# The audit reports of the clean agency and of the flawed one; flawed-agency exits 1 by design.
run: setup
	@mkdir -p reports/out
	$(BIN)/agentperm check fixtures/agency --format json --output reports/out/agency-check.json
	$(BIN)/agentperm check fixtures/agency --report reports/out/agency-report.html
	@$(BIN)/agentperm check fixtures/flawed-agency --report reports/out/flawed-agency-report.html \
		--format json --output reports/out/flawed-agency-check.json; \
	status=$$?; if [ $$status -gt 1 ]; then exit $$status; fi; \
	echo "flawed-agency: findings expected (exit $$status)"
	@echo "JSON result:   $$(pwd)/reports/out/agency-check.json"
	@echo "Audit reports: $$(pwd)/reports/out/agency-report.html"
	@echo "               $$(pwd)/reports/out/flawed-agency-report.html"

test: setup browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) reports/out .pytest_cache
