# Two entry points for a fresh machine with Python 3.11+: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("notifier needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/notifier serve

# One pytest process per core (pytest-xdist), each test file whole in one of them: most tests
# wait on a subprocess or a socket, so two cores halve the suite's time.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n auto --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check notifier tests
	$(VENV)/bin/mypy notifier tests

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)
