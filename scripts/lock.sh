#!/usr/bin/env bash
# Refreshes the locks: requirements.lock from requirements.in, requirements-test.lock from both .in files (the app's
# pins kept), every package at one exact version for Linux x86-64, resolved on Python 3.11 (the Space's) and checked
# to resolve alike on 3.12 (Docker's, the GPU machine's). Then the whole suite runs from the new locks in a fresh
# .venv (exactly .ci/run); if anything fails, the old locks are put back.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || { echo "error: $uv is missing: install the test requirements first (the README's test command)" >&2; exit 2; }
target=(--python-platform x86_64-manylinux_2_28 --custom-compile-command scripts/lock.sh --quiet)
backup=$(mktemp -d)
cp requirements.lock requirements-test.lock "$backup"/ 2>/dev/null || true
restore() { cp "$backup"/*.lock . 2>/dev/null || true; echo "error: the refreshed locks failed ($1); the old ones are back" >&2; exit 1; }

"$uv" pip compile requirements.in -o requirements.lock --upgrade --python-version 3.11 "${target[@]}"
"$uv" pip compile requirements.in requirements-test.in -c requirements.lock -o requirements-test.lock --upgrade \
    --python-version 3.11 "${target[@]}"
pins() { grep -E '^[A-Za-z0-9]' "$1" | sort; }
for lock in requirements.lock requirements-test.lock; do
    ins=(requirements.in); [ "$lock" = requirements-test.lock ] && ins+=(requirements-test.in)
    "$uv" pip compile "${ins[@]}" -c "$lock" -o "$backup/py312" --python-version 3.12 "${target[@]}" \
        || restore "$lock does not resolve on Python 3.12"
    diff <(pins "$lock") <(pins "$backup/py312") >/dev/null || restore "$lock resolves to other versions on Python 3.12"
done
rm -rf .venv
.ci/run || restore "the suite failed"
echo "locks refreshed and the suite passed: commit requirements.lock and requirements-test.lock"
