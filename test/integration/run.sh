#!/bin/sh
# Run the integration suite against ./pgmux and a throwaway PostgreSQL 15.
# Usage (from anywhere): test/integration/run.sh [pytest arguments, e.g. -k cancel -v]
# Exits non-zero when a test fails or when no test was collected.
set -u
cd "$(dirname "$0")/../.." || exit 2
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
"$PYTHON" -m pytest -q -p no:cacheprovider --durations=10 -r fEs test/integration "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "integration: no tests were collected" >&2
fi
exit "$rc"
