# The lab's one entry point: `make help` lists every target.
# Python work runs in .venv, created on first use from pyproject.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed

.PHONY: help venv test test-unit test-config test-integration lint up

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11+"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --upgrade pip
	@$(VPY) -m pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV_STAMP) ## Create or refresh the virtual environment

lint: $(VENV_STAMP) ## Ruff over the whole project
	@$(VENV)/bin/ruff check .

test: $(VENV_STAMP) lint ## Unit, config and integration tiers (needs the Debian packages in .ci/run)
	@$(VPY) -m pytest tests/unit tests/config tests/integration

test-unit: $(VENV_STAMP) ## Unit tier only
	@$(VPY) -m pytest tests/unit

test-config: $(VENV_STAMP) ## Config tier only
	@$(VPY) -m pytest tests/config

test-integration: $(VENV_STAMP) ## Integration tier only (real binaries on loopback)
	@$(VPY) -m pytest tests/integration

up: ## Start the whole lab (compose stack)
	@echo "make up: the compose stack is not built yet; run 'make test' to exercise the agent."; exit 1
