# One command each on a fresh machine: `make demo`, `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: CJK font for charts, Chromium for browser tests, Java 17 for Spark, PostgreSQL, and npm
# (for axe-core, the accessibility rules the browser tests inject: package.json) unless the machine has an
# npm already: a Node.js from elsewhere brings its own and conflicts with Debian's.
DEBS := fonts-noto-cjk chromium chromium-driver openjdk-17-jre-headless postgresql python3-venv \
	$(if $(shell command -v npm),,npm)
AXE := node_modules/axe-core/axe.min.js

.PHONY: demo test lint typecheck system figures clean

# Installs the Debian packages that are missing (as root, where apt-get exists); otherwise says what to install.
system:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install the Debian packages:$$missing"; fi; \
	fi

$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(AXE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: system $(STAMP)
	$(BIN)/python -m api.demo && $(BIN)/zhida serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: system lint typecheck $(AXE)
	$(BIN)/pytest -n auto --dist loadfile

# Rebuilds the notebooks' demo data (var/notebooks/) if missing, runs every notebook, copies the README charts.
figures: system $(STAMP)
	$(BIN)/python notebooks/execute.py --readme-figures notebooks/figures

clean:
	rm -rf $(VENV) var artifacts node_modules .pytest_cache .mypy_cache .ruff_cache
