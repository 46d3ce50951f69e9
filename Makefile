# Every target installs what it needs first; nothing outside this folder is required
# beyond python3 (3.11), node/npm, and (for the database tests) PostgreSQL binaries.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
# jsii past Node 20's end of life reads this one instead (a list of major versions).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# synth is offline: no CLI notices or telemetry calls.
export CDK_DISABLE_CLI_TELEMETRY := true
CDK := node_modules/.bin/cdk
# the one command line (tools/cli.py, installed into .venv by `make venv`)
MWAA_UPGRADE := $(VENV)/bin/mwaa-upgrade
# every shipped stage file: config/<stage>.yaml
STAGES ?= $(sort $(basename $(notdir $(wildcard config/*.yaml))))
# every shipped pipeline: config/pipelines/<name>.yaml
PIPELINES ?= $(sort $(basename $(notdir $(wildcard config/pipelines/*.yaml))))

.PHONY: lint venv node test test-metadata bench-metadata synth review rehearse datapipeline clean

# Quiet builds: one progress line per step; each step's whole output goes to $(VENV_LOG), whose
# name and last lines (without pip's warnings about this machine's index configuration) are
# printed when a step fails. $(call logged,WHAT,COMMAND)
VENV_LOG := .cache/venv-build.log
logged = echo "== $(1)"; $(2) >> $(VENV_LOG) 2>&1 || { echo "$(1): failed; full output: $(VENV_LOG)" >&2; \
  grep -v "is ignored: it is neither" $(VENV_LOG) | tail -n 15 >&2; exit 1; }

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@mkdir -p $(dir $(VENV_LOG)) && : > $(VENV_LOG)
	@$(call logged,$(VENV): creating,python3 -m venv $(VENV))
	@$(call logged,$(VENV): installing requirements-dev.txt,$(PY) -m pip install -r requirements-dev.txt)
	@$(call logged,$(VENV): installing this checkout (mwaa-upgrade command),$(PY) -m pip install --no-deps -e .)
	@touch $@

node: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# PYTEST_ARGS: e.g. -m "not airflow" (skips the real-Airflow tests), -k clone, -x
test: venv node
	$(PY) -m pytest $(PYTEST_ARGS)

# Synthesize every stage offline into cdk.out/<stage> and every pipeline into
# cdk.out/pipeline-<name> (its stages' stacks in assembly-*/; cdk-nag runs inside the app and
# fails synth on any unacknowledged finding, in pipeline stages too), then cfn-lint every
# template (.cfnlintrc.yaml).
synth: venv node
	@set -e; for stage in $(STAGES); do \
	  echo "== cdk synth -c stage=$$stage -> cdk.out/$$stage"; \
	  rm -rf cdk.out/$$stage; \
	  $(CDK) synth --no-lookups --no-notices --quiet --app "$(PY) app.py" -c stage=$$stage -o cdk.out/$$stage; \
	done
	@set -e; for pipeline in $(PIPELINES); do \
	  echo "== cdk synth -c pipeline=$$pipeline -> cdk.out/pipeline-$$pipeline"; \
	  rm -rf cdk.out/pipeline-$$pipeline; \
	  $(CDK) synth --no-lookups --no-notices --quiet --app "$(PY) app.py" -c pipeline=$$pipeline -o cdk.out/pipeline-$$pipeline; \
	done
	@echo "== cfn-lint cdk.out/**/*.template.json"
	$(VENV)/bin/cfn-lint 'cdk.out/**/*.template.json'
	@echo "== templates (cfn-lint clean, cdk-nag AwsSolutions clean):"
	@for f in cdk.out/*/*.template.json cdk.out/*/assembly-*/*.template.json; do [ -e "$$f" ] && echo "   $$f"; done; true

# Review of the synthesized CloudFormation of every stage (config/<stage>.yaml) and pipeline
# (config/pipelines/<name>.yaml, the pipeline stack and its stages' stacks): writes
# reports/review-<stage>.md and reports/review-pipeline-<name>.md and prints a summary. Needs
# the `synth` target (cdk.out/<stage>, cdk.out/pipeline-<name>).
# REVIEW_BASELINE=<dir or git ref>: also compare replacement-causing properties with it: a
# previous cdk.out (e.g. a copy kept as cdk.out.last-release; <dir>/<stage> is used), or a git
# ref (its tree is synthesized offline with this checkout's .venv/node_modules, once per
# commit, cached in .cache/review-baseline).
# REVIEW_SYNTH=: reviews the cdk.out already there without synthesizing again.
REVIEW_BASELINE ?=
REVIEW_SYNTH ?= $(MAKE) --no-print-directory synth
review: venv
	@test -n "$(STAGES)" || { echo "review: no stage files config/<stage>.yaml" >&2; exit 2; }
	$(REVIEW_SYNTH)
	@mkdir -p reports
	@set -e; for stage in $(STAGES) $(addprefix pipeline-,$(PIPELINES)); do \
	  title="stage $$stage"; case $$stage in pipeline-*) title="pipeline $${stage#pipeline-}";; esac; \
	  echo "== review of $$title"; \
	  base=(); \
	  if [ -n "$(REVIEW_BASELINE)" ] && [ -d "$(REVIEW_BASELINE)" ]; then \
	    if [ -d "$(REVIEW_BASELINE)/$$stage" ]; then base=(--baseline "$(REVIEW_BASELINE)/$$stage"); \
	    else echo "   (no baseline $(REVIEW_BASELINE)/$$stage: not compared)"; fi; \
	  elif [ -n "$(REVIEW_BASELINE)" ]; then \
	    file="config/$$stage.yaml"; case $$stage in pipeline-*) file="config/pipelines/$${stage#pipeline-}.yaml";; esac; \
	    if git cat-file -e "$(REVIEW_BASELINE):$$file" 2>/dev/null; then \
	      base=(--baseline "$(REVIEW_BASELINE)" --baseline-out "cdk.out/$$stage"); \
	    else echo "   ($$file not in $(REVIEW_BASELINE): not compared)"; fi; \
	  fi; \
	  $(MWAA_UPGRADE) review --cdk-out cdk.out/$$stage --title "$$title" \
	    --out reports/review-$$stage.md "$${base[@]}"; \
	done

# Local rehearsal of a metadata migration (docs/rehearsal.md); flags through ARGS, e.g.
# make rehearse ARGS="--source-version 2.9.2 --target-version 2.11.0 --rows 5000"
rehearse: venv
	$(MWAA_UPGRADE) rehearse $(ARGS)

# metadata migration only (builds Airflow venvs in .venvs/ and a PostgreSQL cluster in .cache/pg on first use)
test-metadata: venv
	$(PY) -m pytest tests/dags

# never run by `make test`: prints rows/s and peak memory next to plain COPY
bench-metadata: venv
	$(PY) bench/metadata_roundtrip.py --scale 100000 --scale 1000000

clean:
	rm -rf cdk.out .pytest_cache reports

# Lint and type gates (configured in pyproject.toml; dags/ruff.toml keeps dags/ Python 3.8-clean).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# AWS Data Pipeline definition -> Airflow DAG + report (README "AWS Data Pipeline"); flags through ARGS, e.g.
# make datapipeline ARGS="convert pipeline.json --out dags/ --target-version 2.11.0"
datapipeline: venv
	$(MWAA_UPGRADE) datapipeline $(ARGS)
