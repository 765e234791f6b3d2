#!/usr/bin/env bash
# Run a command with Node.js and the client library's dependencies available
# to the tests.
#
#   scripts/test-node.sh go test ./internal/e2e/ -run 'JSClient|WebClient'
#
# The JavaScript client library (clients/js) is tested with Node's test
# runner against a real server (internal/e2e/jsclient_test.go). This script
# looks for node and npm on PATH and, when they are missing and we are root
# with apt-get, installs Debian's nodejs and npm packages. Then it runs
# `npm ci` in clients/js (from the committed package-lock.json: mqtt.js and
# its dependencies) unless node_modules already matches the lock file, and
# exports for the command:
#
#   MQIM_TEST_NODE=1   the Node tests fail (instead of skipping) when node or
#                      clients/js/node_modules is missing
#
# If node cannot be installed (not root, no apt-get), the command runs
# without it and the Node tests are skipped, saying why.
# MQIM_TEST_NODE_SKIP=1 runs the command without Node.

set -euo pipefail

log() { printf 'test-node: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
	echo "usage: $0 command [args...]" >&2
	exit 2
fi

if [ "${MQIM_TEST_NODE_SKIP:-}" = "1" ]; then
	log "MQIM_TEST_NODE_SKIP=1: running without Node"
	exec "$@"
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$root/clients/js

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "node/npm not found; installing Debian's nodejs and npm packages with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update </dev/null >&2
		apt-get install -y --no-install-recommends nodejs npm </dev/null >&2
		if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
			log "error: nodejs and npm installed but node/npm not found on PATH"
			exit 1
		fi
	else
		log "*** node/npm are not installed and cannot be installed automatically"
		log "*** (not root or no apt-get). Running WITHOUT Node: the client library"
		log "*** tests will be skipped. Install Debian's nodejs and npm packages."
		exec "$@"
	fi
fi

# npm ci only when node_modules was not installed from this very lock file
# (a stamp with the lock's hash is left in node_modules).
want=$(sha256sum "$lib/package-lock.json" | cut -d' ' -f1)
stamp=$lib/node_modules/.mqim-lock.sha256
if [ ! -d "$lib/node_modules/mqtt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	log "npm ci in clients/js"
	(cd "$lib" && npm ci --no-audit --no-fund </dev/null >&2)
	echo "$want" >"$stamp"
fi

log "node $(node --version), npm $(npm --version)"
export MQIM_TEST_NODE=1
exec "$@"
