#!/usr/bin/env bash
# Runs `go test -v` with the given arguments, keeps the full output in
# $GOTEST_LOG (default: a temp file), and prints a readable summary: every
# package result, and every test's per-backend result (TestX/sqlite,
# TestX/mysql), so the output shows which suites ran against which store.
# On failure it also prints the output of the failing tests.
set -uo pipefail
log=${GOTEST_LOG:-$(mktemp -t mqim-gotest.XXXXXX)}
go test -v "$@" >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|panic:|---)|^\s+--- (PASS|FAIL|SKIP): Test[^ /]+/(sqlite|mysql) ' "$log" \
	| grep -vE '^--- PASS' || true
passed=$(grep -cE '^\s*--- PASS' "$log")
failed=$(grep -cE '^\s*--- FAIL' "$log")
skipped=$(grep -cE '^\s*--- SKIP' "$log")
if [ "$rc" -ne 0 ]; then
	echo
	echo "==== failures (full log: $log) ===="
	grep -nE -B2 -A40 '^\s*--- FAIL|^panic:|^FAIL\s|build failed|\[setup failed\]' "$log" | head -n 400
fi
echo
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
