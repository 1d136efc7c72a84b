# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
# Ralph, the independent LRS of the LMS client's tests, lives in a venv of its own, apart from the bundle's dependencies
RALPH_VENV ?= .venv-ralph
RALPH_STAMP := $(RALPH_VENV)/.installed-$(shell sha256sum tests/ralph-requirements.txt | cut -c1-12)
# plugins/: the bundle deployed to Airflow; the repository root: turnover_demo, the demo's and tests' tooling
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)
export GX_ANALYTICS_ENABLED := false
TEST_WORKERS ?= 3

.PHONY: install ralph demo test lint unit clean stack stack-status stack-stop

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

ralph: $(RALPH_STAMP)

$(RALPH_STAMP): tests/ralph-requirements.txt
	test -x $(RALPH_VENV)/bin/python || $(PYTHON) -m venv $(RALPH_VENV)
	$(RALPH_VENV)/bin/pip install --quiet -r tests/ralph-requirements.txt
	rm -f $(RALPH_VENV)/.installed-* && touch $@

## Run the whole pipeline on a synthetic enterprise and print what it did.
demo: install
	$(BIN)/python -m turnover_demo.demo

## Lint Python and SQL, build the docs (a broken link fails), then run every test against real PostgreSQL and sshd.
test: install ralph
	TEST_PYTHON=$(BIN)/python bash scripts/ensure_test_services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint include/sql
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	# Three workers on two cores: the suite waits on its servers (sshd, the API servers, the scheduler's stack)
	# a good part of the time; measured on 2 cores, 702 s against 815 s with two workers.
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint include/sql

unit: install
	$(BIN)/pytest tests/unit tests/dags

clean:
	rm -rf .demo logs

## The compose file's topology started natively (no containers): api-server, scheduler, dag-processor,
## triggerer, two Celery workers, their own redis-server, fresh metadata and warehouse databases on the
## local PostgreSQL, and the sample SFTP and LMS servers with a small generated enterprise. Prints the UI's
## URL and admin password; state and logs in .stack/. `make stack-stop` ends it and drops its databases.
stack: install
	bash scripts/ensure_test_services.sh
	$(BIN)/python -m tests.integration.airflow_stack start --state-dir .stack

stack-status:
	$(BIN)/python -m tests.integration.airflow_stack status --state-dir .stack

stack-stop:
	$(BIN)/python -m tests.integration.airflow_stack stop --state-dir .stack
