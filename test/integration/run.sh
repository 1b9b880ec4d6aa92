#!/bin/sh
# Run the integration suite against ./pgmux and a throwaway PostgreSQL 15.
# Usage (from the repo root or anywhere):
#   test/integration/run.sh                      the whole suite
#   test/integration/run.sh -k cancel -v         pytest options
#   test/integration/run.sh test/integration/test_admin.py   only these files
# Exits non-zero when a test fails or when no test was collected (pytest's 5).
set -u
cd "$(dirname "$0")/../.." || exit 2
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
where=test/integration
for arg in "$@"; do
	case "$arg" in
	-*) ;;
	*) if [ -e "${arg%%::*}" ]; then where=; fi ;;
	esac
done
"$PYTHON" -m pytest -q -p no:cacheprovider --durations=10 -r fEs $where "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
	echo "integration: no tests were collected" >&2
fi
exit "$rc"
