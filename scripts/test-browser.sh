#!/usr/bin/env bash
# Run a command with a headless-capable Chromium available to the tests.
#
#   scripts/test-browser.sh go test ./internal/e2e/ -run Browser
#
# The browser tests drive Debian's chromium package (never a browser
# download). If MQIM_CHROMIUM is set it is used as is. Otherwise this script
# looks for chromium on PATH and, when it is missing and we are root with
# apt-get, installs the chromium package. It then exports for the command:
#
#   MQIM_CHROMIUM       the browser binary
#   MQIM_TEST_BROWSER=1 the browser tests fail (instead of skipping) when
#                       they cannot start it
#
# If it cannot be installed (not root, no apt-get), the command runs without
# it and the browser tests are skipped, saying why.
# MQIM_TEST_BROWSER_SKIP=1 runs the command without a browser.

set -euo pipefail

log() { printf 'test-browser: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
	echo "usage: $0 command [args...]" >&2
	exit 2
fi

if [ "${MQIM_TEST_BROWSER_SKIP:-}" = "1" ]; then
	log "MQIM_TEST_BROWSER_SKIP=1: running without a browser"
	exec "$@"
fi

bin=${MQIM_CHROMIUM:-}
if [ -z "$bin" ]; then
	bin=$(command -v chromium || command -v chromium-browser || true)
fi
if [ -z "$bin" ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "chromium not found; installing Debian's chromium package with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update </dev/null >&2
		apt-get install -y --no-install-recommends chromium </dev/null >&2
		bin=$(command -v chromium || true)
		if [ -z "$bin" ]; then
			log "error: chromium installed but not found on PATH"
			exit 1
		fi
	else
		log "*** chromium is not installed and cannot be installed automatically"
		log "*** (not root or no apt-get). Running WITHOUT a browser: the browser"
		log "*** tests will be skipped. Install Debian's chromium package, or set"
		log "*** MQIM_CHROMIUM to a Chromium binary."
		exec "$@"
	fi
fi

log "$("$bin" --version 2>/dev/null || echo "$bin")"
export MQIM_CHROMIUM="$bin" MQIM_TEST_BROWSER=1
exec "$@"
