# The two commands of the README:  make demo  (the whole pipeline locally)  and  make test.
# Both install what they need on a fresh machine: a virtualenv with the project, Apache Kafka
# jars from Maven Central, and the checking tools (promtool, helm, kubeconform).

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE := $(or $(FRAUDRADAR_CACHE),$(HOME)/.cache/fraudradar)
export PATH := $(CURDIR)/$(VENV)/bin:$(CACHE)/bin:$(PATH)
# matplotlib (the reports' plots) keeps its font cache in the project's cache, not in ~/.cache.
export MPLCONFIGDIR ?= $(CACHE)/matplotlib

.PHONY: demo test install tools lint typecheck bench reliability reliability-stress mutation clean distclean

$(VENV)/.installed: pyproject.toml setup.py services/scorer/_fastcore.c models/_hstcore.c
	@command -v cc >/dev/null 2>&1 || bash scripts/install-tools.sh compiler
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@echo "install: fraudradar with its ~90 packages (dependencies and dev tools) into $(VENV);" \
	  "pip lists each; on a fresh machine downloading and installing them takes a few minutes"
	$(PY) -m pip install --progress-bar on -e '.[dev]'
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
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=40 --cov --cov-report=
	$(PY) -m tests.support.coverage_floors

# Mutation testing of the core modules against their fast unit tests (docs/mutation.md). Long,
# niced, not part of `make test`. GROUPS=identifiers,policy runs a subset.
mutation: install
	$(PY) bench/mutation.py $(if $(GROUPS),--groups $(GROUPS))

# The demo keeps its services up after the summary (until Ctrl-C) for docs/bank-guide.md.
demo: install
	$(VENV)/bin/fraudradar demo --serve

# The reliability proof (docs/reliability.md): 1M events, 20 scorer kills, broker faults, hostile
# input, API abuse, privacy scan. Writes reliability/results/reliability.json and .md. Takes long.
reliability: install
	$(PY) -m reliability --out reliability/results/reliability.json

# The same with the CPUs oversubscribed by busy processes (twice the CPUs; reliability/stress.py).
reliability-stress: install
	$(PY) -m reliability --stress --out reliability/results/reliability-stress.json

bench: install
	$(PY) bench/decode.py --json bench/results/decode.json
	$(PY) bench/ingest.py --json bench/results/ingest.json
	$(PY) bench/scorer.py --json bench/results/scorer.json
	$(PY) bench/modellog.py --json bench/results/modellog.json
	$(PY) bench/api.py --json bench/results/api.json

# clean: what the project made inside the checkout (the local broker is stopped first).
# distclean: that and everything it put outside the checkout, i.e. the cache directory (jars,
# tools, broker data, schemas, matplotlib's cache); README "What goes where" lists it all.
clean:
	-@test -x $(VENV)/bin/fraudradar && $(VENV)/bin/fraudradar kafka down
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache .hypothesis demo-out build *.egg-info
	find services models tests bench reliability deploy -name __pycache__ -prune -exec rm -rf {} +
	find services models -name '*.so' -delete

distclean:
	-@test -x $(VENV)/bin/fraudradar && $(VENV)/bin/fraudradar kafka down --purge
	@$(MAKE) --no-print-directory clean
	bash scripts/distclean.sh
