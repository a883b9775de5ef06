#!/usr/bin/env bash
# Installs everything the test suite needs, then runs all of it.
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
    exit 1
fi
exit "$status"
