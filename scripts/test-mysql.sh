#!/usr/bin/env bash
# Run a command with a throwaway MariaDB/MySQL server available to the tests.
#
#   scripts/test-mysql.sh go test -race -count=1 ./...
#
# If MQIM_TEST_MYSQL_DSN is already set it is used as is and the command is
# simply executed. Otherwise this script starts a private server on a free
# loopback port with a datadir in a temp dir, creates a user that may
# CREATE/DROP DATABASE, exports the variables below, runs the command, and
# always stops the server and removes the temp dir afterwards. The exit code
# of the command is propagated.
#
# Exported for the command:
#   MQIM_TEST_MYSQL_DSN      go-sql-driver DSN without a database name:
#                            mqim:<password>@tcp(127.0.0.1:<port>)/
#   MQIM_TEST_MYSQL_PORT     TCP port on 127.0.0.1
#   MQIM_TEST_MYSQL_PID      pid of the mariadbd started by this script
#   MQIM_TEST_MYSQL_PIDFILE  the server's --pid-file (holds the pid of the
#                            currently running server, also after a restart)
#   MQIM_TEST_MYSQL_SOCKET   unix socket path (root@localhost, no password)
#   MQIM_TEST_MYSQL_DATADIR  datadir
#   MQIM_TEST_MYSQL_START    shell command (run it with `sh -c "$..."`) that
#                            starts the same server again with the same args
#                            in the background and returns once it accepts
#                            connections (exit 0) or failed/timed out (exit 1).
#                            Use it after killing the server (e.g. with the
#                            pid from MQIM_TEST_MYSQL_PIDFILE) to test outages.
#
# If no server binary is installed, it is installed with apt when running as
# root; otherwise the command runs without MySQL (nothing is exported).
# MQIM_TEST_MYSQL_SKIP=1 runs the command without MySQL.
# MQIM_TEST_MYSQL_START_TIMEOUT (seconds, default 60) bounds server start-up.

set -euo pipefail

log() { printf 'test-mysql: %s\n' "$*" >&2; }

if [ "$#" -eq 0 ]; then
	echo "usage: $0 command [args...]" >&2
	exit 2
fi

if [ -n "${MQIM_TEST_MYSQL_DSN:-}" ]; then
	log "using MQIM_TEST_MYSQL_DSN from the environment"
	exec "$@"
fi

if [ "${MQIM_TEST_MYSQL_SKIP:-}" = "1" ]; then
	log "MQIM_TEST_MYSQL_SKIP=1: running without MySQL"
	exec "$@"
fi

start_timeout=${MQIM_TEST_MYSQL_START_TIMEOUT:-60}

# Look up a program, also in the sbin dirs that are often not in PATH for
# non-root users.
find_bin() {
	local n
	for n in "$@"; do
		if PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin:/usr/libexec" command -v "$n" 2>/dev/null; then
			return 0
		fi
	done
	return 1
}

server_bin=$(find_bin mariadbd mysqld || true)
if [ -z "$server_bin" ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "mariadbd/mysqld not found; installing mariadb-server with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update </dev/null >&2
		apt-get install -y --no-install-recommends mariadb-server </dev/null >&2
		server_bin=$(find_bin mariadbd mysqld || true)
		if [ -z "$server_bin" ]; then
			log "error: mariadb-server installed but mariadbd/mysqld still not found"
			exit 1
		fi
	else
		log "*** mariadbd/mysqld is not installed and cannot be installed automatically"
		log "*** (not root or no apt-get). Running WITHOUT MySQL: the MySQL store and"
		log "*** end-to-end tests will be skipped. Install mariadb-server, or set"
		log "*** MQIM_TEST_MYSQL_DSN=user:pass@tcp(host:port)/ to use an existing server."
		exec "$@"
	fi
fi

client_bin=$(find_bin mariadb mysql) || { log "error: mariadb/mysql client not found"; exit 1; }
admin_bin=$(find_bin mariadb-admin mysqladmin) || { log "error: mariadb-admin/mysqladmin not found"; exit 1; }

is_mariadb=0
if "$server_bin" --version 2>/dev/null | grep -qi mariadb; then
	is_mariadb=1
fi

# Temp dir. Keep it short: unix socket paths are limited to ~107 bytes.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mqim-mysql.XXXXXX")
if [ "${#tmp}" -gt 70 ]; then
	rmdir "$tmp"
	tmp=$(mktemp -d /tmp/mqim-mysql.XXXXXX)
fi
datadir=$tmp/data
socket=$tmp/mysqld.sock
pidfile=$tmp/mariadbd.pid
errlog=$tmp/mariadbd.err
startscript=$tmp/start.sh
server_pid=

# pid is a live (non-zombie) process belonging to our server (its command
# line mentions our temp dir), so we never signal an unrelated process.
our_server_alive() {
	local pid=$1 stat
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/stat" ]; then
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		[ "${stat%% *}" != "Z" ] || return 1
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$tmp" || return 1
	fi
	return 0
}

server_pids() {
	local p d
	{
		[ -z "$server_pid" ] || echo "$server_pid"
		[ ! -s "$pidfile" ] || cat "$pidfile"
		[ ! -s "$tmp/server.pid" ] || cat "$tmp/server.pid"
		# Also any process started with our datadir (e.g. restarted by a test
		# through MQIM_TEST_MYSQL_START).
		for d in /proc/[0-9]*; do
			if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "--datadir=$datadir "; then
				echo "${d#/proc/}"
			fi
		done
	} 2>/dev/null | sort -u | while read -r p; do
		case $p in '' | *[!0-9]*) continue ;; esac
		if our_server_alive "$p"; then echo "$p"; fi
	done
}

stop_server() {
	local pids p i
	pids=$(server_pids)
	[ -n "$pids" ] || return 0
	# Graceful shutdown first, then TERM, then KILL.
	if [ -S "$socket" ]; then
		timeout 30 "$admin_bin" --no-defaults --socket="$socket" -uroot \
			--connect-timeout=5 shutdown </dev/null >/dev/null 2>&1 || true
	fi
	for i in $(seq 1 300); do
		pids=$(server_pids)
		[ -n "$pids" ] || return 0
		if [ "$i" -eq 50 ]; then
			for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
		fi
		sleep 0.1
	done
	for p in $pids; do
		log "mariadbd $p did not stop; killing it"
		kill -KILL "$p" 2>/dev/null || true
	done
	sleep 0.5
}

# shellcheck disable=SC2317 # invoked via trap
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	stop_server
	if [ -n "${MQIM_TEST_MYSQL_KEEP:-}" ]; then
		log "MQIM_TEST_MYSQL_KEEP set: leaving $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# POSIX-sh single quoting.
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# Any free port on 127.0.0.1, below the usual ephemeral range so it does not
# collide with outgoing connections. A start-up failure because the port got
# taken in the meantime is retried with another port.
pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	log "error: no free port found"
	return 1
}

now_ms() { date +%s%3N; }
t0=$(now_ms)

mkdir -p "$datadir" "$tmp/tmp"
user_args=()
if [ "$(id -u)" -eq 0 ]; then
	user_args=(--user=root)
fi

if [ "$is_mariadb" -eq 1 ]; then
	install_bin=$(find_bin mariadb-install-db mysql_install_db) || { log "error: mariadb-install-db not found"; exit 1; }
	if ! "$install_bin" --no-defaults --auth-root-authentication-method=normal \
		--datadir="$datadir" "${user_args[@]}" --skip-test-db --skip-name-resolve \
		</dev/null >"$tmp/install.log" 2>&1; then
		log "error: $install_bin failed:"
		cat "$tmp/install.log" >&2
		exit 1
	fi
else
	if ! "$server_bin" --no-defaults --initialize-insecure --datadir="$datadir" \
		"${user_args[@]}" </dev/null >"$tmp/install.log" 2>&1; then
		log "error: $server_bin --initialize-insecure failed:"
		cat "$tmp/install.log" >&2
		exit 1
	fi
fi
t_init=$(now_ms)

write_start_script() {
	local port=$1 a cmd=""
	local args=(
		"$server_bin" --no-defaults
		--datadir="$datadir"
		--socket="$socket"
		--port="$port"
		--bind-address=127.0.0.1
		"${user_args[@]}"
		--skip-networking=0
		--skip-name-resolve
		--innodb-buffer-pool-size=256M
		--innodb-flush-log-at-trx-commit=1
		--character-set-server=utf8mb4
		--collation-server=utf8mb4_unicode_ci
		--max-connections=1000
		--tmpdir="$tmp/tmp"
		--pid-file="$pidfile"
		--log-error="$errlog"
	)
	if [ "$is_mariadb" -eq 0 ]; then
		args+=(--mysqlx=0 --skip-log-bin)
	fi
	for a in "${args[@]}"; do cmd+="$(shq "$a") "; done
	cat >"$startscript" <<EOF
#!/bin/sh
# Generated by scripts/test-mysql.sh: (re)start the throwaway test server in
# the background and wait until it accepts connections.
set -u
ping() {
	$(shq "$admin_bin") --no-defaults --socket=$(shq "$socket") -uroot --connect-timeout=2 ping </dev/null >/dev/null 2>&1
}
# Already running (pid file names a live server on this datadir)? Then only
# wait until it answers.
old=\$(cat $(shq "$pidfile") 2>/dev/null || true)
if [ -n "\$old" ] && kill -0 "\$old" 2>/dev/null &&
	tr '\\0' ' ' </proc/"\$old"/cmdline 2>/dev/null | grep -qF -- $(shq "--datadir=$datadir "); then
	echo "test-mysql: server already running (pid \$old)" >&2
	i=0
	while [ "\$i" -lt $((start_timeout * 10)) ]; do
		ping && exit 0
		i=\$((i + 1))
		sleep 0.1
	done
	exit 1
fi
${cmd}</dev/null >>$(shq "$tmp/mariadbd.out") 2>&1 &
pid=\$!
echo "\$pid" >>$(shq "$tmp/server.pid")
deadline=\$((\$(date +%s) + $start_timeout))
while :; do
	if [ "\$(cat $(shq "$pidfile") 2>/dev/null)" = "\$pid" ] && ping; then
		exit 0
	fi
	st=\$(cat /proc/\$pid/stat 2>/dev/null || echo 'x) Z')
	st=\${st##*) }
	if ! kill -0 "\$pid" 2>/dev/null || [ "\${st%% *}" = Z ]; then
		echo "test-mysql: server exited during start-up; last lines of $errlog:" >&2
		tail -n 20 $(shq "$errlog") >&2
		exit 1
	fi
	if [ "\$(date +%s)" -ge "\$deadline" ]; then
		echo "test-mysql: server did not accept connections within ${start_timeout}s; see $errlog" >&2
		exit 1
	fi
	sleep 0.1
done
EOF
	chmod +x "$startscript"
}

port=
for attempt in 1 2 3 4 5; do
	port=$(pick_port)
	write_start_script "$port"
	if sh "$startscript"; then
		break
	fi
	stop_server
	if [ "$attempt" -lt 5 ] && grep -qiE 'address already in use|bind on tcp/ip port' "$errlog" 2>/dev/null; then
		log "port $port was taken; retrying with another port"
		: >"$errlog"
		continue
	fi
	log "error: could not start $server_bin"
	exit 1
done
server_pid=$(tail -n 1 "$tmp/server.pid")
t_up=$(now_ms)

password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
if [ "$is_mariadb" -eq 1 ]; then
	create_user="CREATE USER 'mqim'@'%s' IDENTIFIED BY '$password';"
else
	create_user="CREATE USER 'mqim'@'%s' IDENTIFIED WITH mysql_native_password BY '$password';"
fi
{
	for host in 127.0.0.1 localhost; do
		# shellcheck disable=SC2059
		printf "$create_user\n" "$host"
		printf "GRANT ALL PRIVILEGES ON *.* TO 'mqim'@'%s' WITH GRANT OPTION;\n" "$host"
	done
	echo "FLUSH PRIVILEGES;"
} | "$client_bin" --no-defaults --socket="$socket" -uroot || {
	log "error: creating the test user failed"
	exit 1
}

# Prove the DSN credentials work over TCP.
if ! "$client_bin" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -umqim -p"$password" \
	-N -e 'SELECT 1' </dev/null >/dev/null; then
	log "error: cannot connect as mqim over TCP on 127.0.0.1:$port"
	exit 1
fi
t_ready=$(now_ms)

export MQIM_TEST_MYSQL_DSN="mqim:${password}@tcp(127.0.0.1:${port})/"
export MQIM_TEST_MYSQL_PORT=$port
export MQIM_TEST_MYSQL_PID=$server_pid
export MQIM_TEST_MYSQL_PIDFILE=$pidfile
export MQIM_TEST_MYSQL_SOCKET=$socket
export MQIM_TEST_MYSQL_DATADIR=$datadir
MQIM_TEST_MYSQL_START="sh $(shq "$startscript")"
export MQIM_TEST_MYSQL_START

log "$("$server_bin" --version | sed 's/^[^ ]* *//') ready on 127.0.0.1:$port (pid $server_pid)" \
	"in $((t_ready - t0))ms (init $((t_init - t0))ms, start $((t_up - t_init))ms)"

set +e
"$@"
rc=$?
set -e
exit "$rc"
