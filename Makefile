# The two commands of the README:  make demo  (the whole pipeline locally)  and  make test.
# Both install what they need on a fresh machine: a virtualenv with the project, Apache Kafka
# jars from Maven Central, and the checking tools (promtool, helm, kubeconform).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(or $(FRAUDRADAR_CACHE),$(HOME)/.cache/fraudradar)/bin:$(PATH)

.PHONY: demo test install tools lint typecheck bench reliability mutation clean

$(VENV)/.installed: pyproject.toml setup.py services/scorer/_fastcore.c models/_hstcore.c
	@command -v cc >/dev/null 2>&1 || bash scripts/install-tools.sh compiler
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
	$(VENV)/bin/fraudradar kafka fetch

tools: install
	bash scripts/install-tools.sh

lint: install
	$(VENV)/bin/ruff check services models tests bench reliability

typecheck: install
	$(VENV)/bin/mypy

# Every test (a skip fails: tests/support/guards.py), with coverage of the product and of the
# services the tests start; the per-package floors (pyproject.toml) fail the run when one drops.
test: tools lint typecheck
	rm -rf .cache/coverage && mkdir -p .cache/coverage
	$(VENV)/bin/pytest -q -p no:cacheprovider --cov --cov-report=
	$(PY) -m tests.support.coverage_floors

# Mutation testing of the core modules against their fast unit tests (docs/mutation.md). Long,
# niced, not part of `make test`. GROUPS=identifiers,policy runs a subset.
mutation: install
	$(PY) bench/mutation.py $(if $(GROUPS),--groups $(GROUPS))

demo: install
	$(VENV)/bin/fraudradar demo

# The reliability proof (docs/reliability.md): 1M events, 20 scorer kills, broker faults, hostile
# input, API abuse, privacy scan. Writes reliability/results/reliability.json and .md. Takes long.
reliability: install
	$(PY) -m reliability --out reliability/results/reliability.json

bench: install
	$(PY) bench/decode.py --json bench/results/decode.json
	$(PY) bench/ingest.py --json bench/results/ingest.json
	$(PY) bench/scorer.py --json bench/results/scorer.json
	$(PY) bench/modellog.py --json bench/results/modellog.json
	$(PY) bench/api.py --json bench/results/api.json

clean:
	-$(VENV)/bin/fraudradar kafka down
	rm -rf $(VENV) .cache
