# The two commands the README opens with: `make run` and `make test`.
# Each creates .venv/ with a Python >= 3.11 and installs what it needs.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench clean prometheus-tools bench-tools

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "mailpool needs Python >= 3.11 (python3.11 or newer on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/mailpool dev

# The AWS CLI pins its own botocore, so it lives in a venv of its own (for localsqs tests).
$(VENV)/awscli/bin/aws: | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/awscli
	$(VENV)/awscli/bin/python -m pip install --quiet awscli

# checkov (IaC security analysis of the deployment templates) pins many packages of its own,
# so it too lives in a venv of its own.
$(VENV)/checkov/bin/checkov: | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet 'checkov>=3.3,<4'

# promtool and Prometheus (Debian's package) check the metrics, the alert rules and the
# dashboard's queries. Installed when missing and this is a Debian-like machine where we
# are root (as in CI); elsewhere those tests are skipped and say so.
prometheus-tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's prometheus package (promtool, prometheus)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null && \
	      apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; \
	  else \
	    echo "note: promtool/prometheus not found; the Prometheus tests will be skipped"; \
	  fi; \
	fi

test: $(VENV)/.installed-dev $(VENV)/awscli/bin/aws $(VENV)/checkov/bin/checkov prometheus-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/aws/*.yaml
	mkdir -p var && rm -f var/aws-calls.tsv
	MAILPOOL_AWS_RECORD=$(CURDIR)/var/aws-calls.tsv MAILPOOL_AWS_CLI=$(VENV)/awscli/bin/aws \
	    MAILPOOL_CHECKOV=$(VENV)/checkov/bin/checkov \
	    $(BIN)/pytest -n 2 --dist loadgroup -m "not privilege"
	MAILPOOL_AWS_RECORD=$(CURDIR)/var/aws-calls.tsv $(BIN)/pytest -m privilege

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' -e clients/python
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

# The standard benchmark set; figures and plots are recorded in benchmarks/RESULTS.md.
# hey, the load generator mailpool-loadtest is held to (benchmarks.generators): Debian's
# package, installed where we are root on a Debian-like machine; elsewhere that comparison
# is skipped and says so.
bench-tools:
	@command -v hey >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get install -y -qq --no-install-recommends hey >/dev/null 2>&1; } || \
	  echo "note: hey not found; benchmarks.generators runs without it"

bench: $(VENV)/.installed-bench bench-tools
	$(BIN)/python -m benchmarks.engines --engines localsqs,moto --clients 2 --seconds 10 --runs 3
	$(BIN)/python -m benchmarks.scaling --shards 1,2,4,8 --quota 10 --seconds 5 --runs 3 \
	    --plot benchmarks/scaling.png
	$(BIN)/python -m benchmarks.e2e --messages 20000 --seconds 4 --runs 3 --plot benchmarks/e2e.png
	$(BIN)/python -m benchmarks.intake --seconds 5 --concurrency 64 --runs 3 \
	    --plot benchmarks/intake.png
	$(BIN)/python -m benchmarks.peer --emails 3000 --runs 5 --plot benchmarks/peer.png
	$(BIN)/python -m benchmarks.peer --emails 3000 --runs 3 --intakes 2 --senders 2
	$(BIN)/python -m benchmarks.backlog --backlog 1000000 --measure 20000 --runs 3
	$(BIN)/python -m benchmarks.soak --seconds 300 --rate 200
	$(BIN)/python -m benchmarks.overload --quota 2 --shards 4 --seconds 5 --runs 3 \
	    --plot benchmarks/overload.png
	$(BIN)/python -m benchmarks.events --messages 10000 --events 5000 --runs 3
	$(BIN)/python -m benchmarks.state --messages 5000 --requests 3000 --seconds 5 --runs 3
	$(BIN)/python -m benchmarks.contention --rate 200 --seconds 10 --runs 3
	$(BIN)/python -m benchmarks.attachments --emails 2000 --runs 3
	$(BIN)/python -m benchmarks.wire --calls 300 --emails 3000 --requests 3000 --runs 3
	$(BIN)/python -m benchmarks.steps --emails 6000 --requests 4000 --runs 3
	$(BIN)/python -m benchmarks.writes --items 3600 --prefill 50000 --runs 3
	$(BIN)/python -m benchmarks.client --requests 5000 --runs 3
	$(BIN)/python -m benchmarks.lambda_worker --messages 3000 --duplicates 4000 --runs 3
	$(BIN)/python -m benchmarks.streams --bulk 80000 --seconds 30 --rate 20 --runs 4
	$(BIN)/python -m benchmarks.generators --rate 1000 --seconds 10 --runs 3 --capacity 5000
	$(BIN)/python -m benchmarks.generators --target intake --rate 100 --seconds 10 --runs 5 \
	    --workers 1 --capacity 5000
	$(BIN)/python -m benchmarks.generators --target stack --rate 200 --seconds 15 --runs 3 \
	    --workers 40 --capacity 5000
	$(BIN)/python -m benchmarks.generators --target stack --rate 300 --seconds 15 --runs 3 \
	    --workers 40 --capacity 5000

clean:
	rm -rf $(VENV) var
