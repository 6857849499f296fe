# The lab's one entry point: `make help` lists every target.
# Python work runs in .venv, created on first use from pyproject.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed

# Stack helpers need only the standard library, so `make up` works before the venv exists.
LAB := $(PYTHON) -m lab.stack
COMPOSE := docker compose

# `make load` defaults: a bounded baseline run (seconds, simulated users).
RUN_TIME ?= 120
USERS ?= 10

.PHONY: help venv test test-unit test-config test-integration lint \
	up down clean ps logs load scenario smoke

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

# Each step fails with one line naming the fix: missing Docker or Compose v2, a host port
# already taken, an image that cannot be pulled or built, a service that never gets healthy.
up: ## Start the whole lab, wait until every service is healthy, print the URLs
	@command -v $(PYTHON) >/dev/null \
		|| { echo "error: $(PYTHON) not found; install Python 3.11+"; exit 1; }
	@$(LAB) check-docker
	@$(LAB) env
	@$(LAB) preflight
	@$(LAB) start
	@$(LAB) wait
	@$(LAB) reload-rules
	@$(LAB) urls

down: ## Stop the lab; data (metrics, logs, dashboards state) is kept for the next make up
	@$(LAB) check-docker
	@$(COMPOSE) down --remove-orphans

clean: ## Stop the lab and delete its data volumes
	@$(LAB) check-docker
	@$(COMPOSE) down --volumes --remove-orphans

ps: ## Show every lab container with its health
	@$(LAB) check-docker
	@$(COMPOSE) ps --all

logs: ## Follow the lab's logs, or one service's with SERVICE=name
	@$(LAB) check-docker
	@$(COMPOSE) logs --follow --tail 100 $(SERVICE)

load: $(VENV_STAMP) ## Baseline headless Locust against the running lab (RUN_TIME=s USERS=n)
	@$(LAB) require-running demo-agent
	@$(VPY) -m loadgen baseline --host "$$($(LAB) url demo-agent)" \
		--run-time $(RUN_TIME) --users $(USERS)

scenario: $(VENV_STAMP) ## Run a named alert scenario: make scenario NAME=HighErrorRate
ifeq ($(strip $(NAME)),)
	@echo "Give a scenario: make scenario NAME=<name>. The scenarios:"
	@$(VPY) -m loadgen list
else
	@$(VPY) -m loadgen check $(NAME)
	@$(LAB) require-running demo-agent
	@$(VPY) -m loadgen run $(NAME) --host "$$($(LAB) url demo-agent)"
endif

smoke: $(VENV_STAMP) ## Smoke tier: the real compose stack (skips, with the reason, without Docker)
	@$(VPY) -m pytest -m smoke tests/smoke
