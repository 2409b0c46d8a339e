#!/usr/bin/env bash
# The install matrix of `make test-installs` (run by .ci/run): the fast tests
#   - on the oldest allowed versions of every direct dependency (uv's lowest-direct resolution), Python 3.11;
#   - on Python 3.12 and 3.13 with the newest versions, where those interpreters exist (pyenv or PATH);
#     a missing one is skipped with a line saying so.
# Each venv lives under var/installs/ and is reused; uv's cache keeps a rerun to seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(realpath "${UV:-.venv/bin/uv}")
export UV
FAST_TESTS=(tests/operators tests/settings tests/sink/test_launch.py tests/stream/test_job_stream.py tests/test_observability.py
  tests/test_metrics_dashboard.py tests/daemon/test_cli_options.py tests/test_packaging.py
  "tests/daemon/test_reload_status.py::test_dry_run_lists_where_each_file_would_go_and_changes_nothing")

find_python() {  # the newest installed interpreter of a minor version (pyenv first, then PATH), or nothing
  local minor=$1 root found
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  found=$(ls -d "$root"/versions/"$minor".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] || found=$(command -v "python$minor" 2>/dev/null || true)
  echo "$found"
}

run() {  # label python resolution
  local label=$1 python=$2 resolution=$3 venv=var/installs/$1 start=$SECONDS
  "$UV" venv --quiet --allow-existing -p "$python" "$venv"
  VIRTUAL_ENV=$venv "$UV" pip install --quiet --resolution "$resolution" -e '.[test]'
  echo "== $label: $("$venv/bin/python" --version), $(VIRTUAL_ENV=$venv "$UV" pip freeze 2>/dev/null |
    grep -iE '^(dynaconf|prometheus.client|pyftpdlib|reactivex|tqdm|watchdog)==' | tr '\n' ' ')"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "${FAST_TESTS[@]}"
  echo "== $label: $((SECONDS - start)) s"
}

run lowest-3.11 "${PYTHON:-python3}" lowest-direct
for minor in 3.12 3.13; do
  python=$(find_python "$minor")
  if [ -z "$python" ]; then
    echo "== python$minor: skipped, no interpreter found (install it with pyenv to test it)"
  else
    run "newest-$minor" "$python" highest
  fi
done
