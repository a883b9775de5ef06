#!/usr/bin/env bash
# mypy over the assetlens.* namespace. The folders install under assetlens.* through setuptools'
# package-dir, which mypy cannot follow, so it checks a temporary tree of links laid out as installed.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/assetlens"
for f in assetlens/*; do ln -s "$PWD/$f" "$tree/$f"; done
for d in engine export ui benchmarks; do ln -s "$PWD/$d" "$tree/assetlens/$d"; done
status=0
(cd "$tree" && python3 -m mypy --config-file "$OLDPWD/pyproject.toml" --cache-dir "$OLDPWD/.mypy_cache" -p assetlens "$@") \
    > "$tree/out" || status=$?
sed -E "s#^assetlens/(engine|export|ui|benchmarks)/#\1/#" "$tree/out"
exit "$status"
