# Two entry points for a fresh machine with Python 3.11+ and make: `make run` and `make test`
# (and `make bench`, the benchmarks against baselines, writing docs/benchmarks.md; and `make soak`,
# the reliability tests of tests/reliability at soak size).
# Each creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint docs bench soak clean servers test-installs constraints

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/beemon-uploader run --simulate-station --stats-interval 10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# vsftpd and ProFTPD for the tests that run against real servers (unpacked under var/servers; see the script),
# and libfaketime for the wall-clock test.
servers:
	./tools/install-servers.sh var/servers

test: lint docs servers
	$(BIN)/python -m pytest -n 4

# The fast tests on the lowest allowed dependency versions (Python 3.11) and on Python 3.12 and 3.13
# with the newest ones, each in its own venv under var/installs (about 2 minutes; .ci/run runs it).
test-installs: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	PYTHON=$(PYTHON) UV=$(BIN)/uv ./tools/test-installs.sh

# deploy/constraints.txt: the versions of the dev venv, hashed, for station installs.
constraints: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/python -m pip freeze --exclude-editable | grep -iE '^(dynaconf|prometheus.client|pyftpdlib|reactivex|tqdm|watchdog|typing.extensions|pyasyn[a-z]+)==' > var/tested-pins.txt
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --no-header \
		--annotation-style line -c var/tested-pins.txt -o var/constraints.body
	{ sed -n '/^#/p' deploy/constraints.txt; cat var/constraints.body; } > deploy/constraints.txt

# The benchmarks against baselines, writing the generated parts of docs/benchmarks.md (14 minutes on a quiet
# 2-core machine, 21 under other work: the table's rows 11.5-19, the tbf link row, tests/benchmarks/link.py,
# some 2.5 and root only: it says so and skips otherwise). Installs what it compares with: vsftpd (make servers) and lftp (as root, via apt).
bench: $(STAMP) servers
	./tools/install-bench-tools.sh
	$(BIN)/python -m tests.benchmarks
	$(BIN)/python -m tests.benchmarks.link

# The reliability tests' soak variants (marked slow, left out of `make test`): some 1,500 files
# under 21 SIGKILLs, 20 s outages, half a minute of folder churn, thousands of fuzzed inputs; and the
# field scenario on a real rate-limited link (tbf in a network namespace: root only, it says so otherwise).
soak: $(STAMP) servers
	$(BIN)/python -m pytest -m slow tests/reliability tests/field

docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .ruff_cache docs/_build
