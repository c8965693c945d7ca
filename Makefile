# Two commands for a newcomer: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
UV := $(TOOLS)/bin/uv
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.synced-stamp
export UV_PYTHON_DOWNLOADS := never
.DEFAULT_GOAL := help

.PHONY: help setup lint format test demo bench emulator airflow airflow-cli clean browser

## help: list the targets (the default: `make` with no target)
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); split($$0, p, ": "); \
	    printf "  %-12s %s\n", p[1], substr($$0, length(p[1]) + 3); next } \
	  /^##   / { sub(/^##   /, ""); printf "  %-12s   %s\n", "", $$0 }' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install (as pip and the production image do): where Python may not
# write it (PYTHONDONTWRITEBYTECODE), every process would otherwise compile its imports again
# (Airflow's and SQLAlchemy's take seconds; the message reader process starts in about 0.3 s
# instead of 1 s). The project's own sources (editable) are compiled too; an edited file is
# compiled again in memory, as Python always does for a stale .pyc.
$(STAMP): pyproject.toml devtools/pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	$(VENV)/bin/python -m compileall -q -j0 src devtools/src
	@touch $@

## setup: install uv (pinned) and the locked environment into .venv
setup: $(STAMP)

## lint: ruff check (with Airflow AIR rules) and format check
lint: setup
	$(VENV)/bin/ruff check --no-fix .
	$(VENV)/bin/ruff format --check .

## format: apply ruff fixes and formatting
format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## test: lint, then the whole test suite (after `browser`, which never fails it)
test: lint browser
	$(VENV)/bin/pytest

## browser: Debian's chromium and chromium-driver for the browser test (apt-get, as root), or
##   a line saying why not; the browser test is skipped, with that reason, where they are absent
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "browser: chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "browser: installing Debian's chromium and chromium-driver with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "browser: apt-get could not install chromium: the browser test will be skipped"; \
	else \
	  echo "browser: not root or no apt-get: install chromium and chromium-driver to run the browser test (skipped for now)"; \
	fi

## demo: generate a demo store and run the main job end to end
demo: setup
	$(VENV)/bin/python -m talklog_dev.demo

## bench: the performance benchmark (1k to 1M messages, ~10 min), e.g. ARGS='--sizes 1000,100000';
##   writes docs/performance.md and docs/performance.png (the plot needs the `bench` group)
bench: setup
	$(UV) sync --locked --inexact --compile-bytecode --group bench
	$(VENV)/bin/python bench/pipeline.py $(ARGS)

## emulator: run the local Salesforce API emulator in the foreground
emulator: setup
	$(VENV)/bin/python -m talklog_dev.emulator serve --port $${PORT:-8443}

## airflow: scheduler, dag-processor, api-server (+ Celery worker) on 127.0.0.1, no containers
##   PostgreSQL metadata DB `talklog_airflow` when 127.0.0.1:5432 answers, else SQLite;
##   TALKLOG_AIRFLOW_EXECUTOR=CeleryExecutor adds a worker on the local Redis. Ctrl-C stops all.
airflow: setup
	$(VENV)/bin/python -m talklog_dev.localstack

## airflow-cli: the airflow CLI against the running `make airflow`, e.g. ARGS='dags list'
airflow-cli: setup
	source $(CURDIR)/var/airflow/env.sh && $(VENV)/bin/airflow $(ARGS)

## constraints: re-export constraints.txt, the pins of uv.lock that the Dockerfile installs with
##   (also an astro project's requirements); tests/unit/test_deployment_files.py fails on drift
.PHONY: constraints
constraints: | $(UV)
	$(UV) export --frozen --no-dev --no-emit-workspace --no-hashes --package lineworks-talklog --quiet > constraints.txt

## clean: remove .venv, .tools and the caches (not var/)
clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build
