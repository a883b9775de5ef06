#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it, then the lint and type gates
# (ruff check, ruff format --check, mypy). Arguments go to pytest, e.g. -m "not slow" for the fast tier.
# pytest's exit code 5 ("no tests collected") counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test (tests/test_browser.py) drives Debian's Chromium through its matching chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
status=0
python3 -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests; that is a failure" >&2
    status=1
fi
gates=0
python3 -m ruff check . || gates=1
python3 -m ruff format --check . || gates=1
bash scripts/typecheck.sh || gates=1
[ "$gates" -eq 0 ] || echo "lint or type check failed (ruff check, ruff format --check, mypy)" >&2
[ "$status" -ne 0 ] && exit "$status"
exit "$gates"
