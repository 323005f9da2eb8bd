#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, slow tests included. pytest exits 5 when no test
# was collected, and any non-zero exit fails this script: "no tests" is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
