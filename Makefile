# Every target installs what it needs first; nothing outside this folder is required
# beyond python3 (3.11), node/npm, and (for the database tests) PostgreSQL binaries.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv node test test-metadata bench-metadata clean rehearse

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt 2> >(grep -v "is ignored: it is neither" >&2)
	touch $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: venv node
	$(PY) -m pytest

# Local rehearsal of a metadata migration (docs/rehearsal.md); flags through ARGS, e.g.
# make rehearse ARGS="--source-version 2.9.2 --target-version 2.11.0 --rows 5000"
rehearse: venv
	$(PY) -m tools.rehearse $(ARGS)

# metadata migration only (builds Airflow venvs in .venvs/ and a PostgreSQL cluster in .cache/pg on first use)
test-metadata: venv
	$(PY) -m pytest tests/dags

# never run by `make test`: prints rows/s and peak memory next to plain COPY
bench-metadata: venv
	$(PY) bench/metadata_roundtrip.py --scale 100000 --scale 1000000

clean:
	rm -rf cdk.out .pytest_cache reports
