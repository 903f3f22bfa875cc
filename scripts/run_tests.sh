#!/usr/bin/env bash
# Set up (idempotent), then lint with ruff and run the pytest suite; arguments go to pytest.
# Both always run; the exit status is non-zero when either fails (or when pytest collects no tests).
#   bash scripts/run_tests.sh                 # everything
#   bash scripts/run_tests.sh -k packaging    # a subset
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/prepare_env.sh"

echo "[run_tests] ruff check ."
ruff_status=0
ruff check . || ruff_status=$?

# Two worker processes, each test file on one of them (its module fixtures built once);
# FLOWFEAT_TEST_WORKERS=0 runs everything in this process.
workers=(-n "${FLOWFEAT_TEST_WORKERS:-2}" --dist loadfile)
echo "[run_tests] python -m pytest ${workers[*]} $*"
pytest_status=0
python -m pytest "${workers[@]}" "$@" || pytest_status=$?
if [[ "$pytest_status" -eq 5 ]]; then
    echo "[run_tests] ERROR: pytest collected no tests (exit 5); check the selection: $*" >&2
fi

if [[ "$ruff_status" -ne 0 ]]; then
    echo "[run_tests] ERROR: ruff check failed (exit $ruff_status)" >&2
fi
if [[ "$pytest_status" -ne 0 ]]; then
    exit "$pytest_status"
fi
exit "$ruff_status"
