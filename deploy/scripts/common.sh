# shellcheck shell=bash
# Shared helpers for deploy/scripts/*.sh. Source it; do not run it.

EVENTMART_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
EVENTMART_RUN=${EVENTMART_RUN:-$EVENTMART_REPO/.run}
EVENTMART_CACHE=${EVENTMART_CACHE:-${HOME:-/root}/.cache/eventmart}

# Name used in messages, e.g. "kafka" or "postgres".
: "${EM_NAME:=eventmart}"

log() { printf '%s: %s\n' "$EM_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$EM_NAME" "$*" >&2; exit 1; }

# port_in_use PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PID: true when PID exists and is not a zombie.
pid_alive() {
	local pid=$1 stat
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# pid_cmdline_has PID STRING...: true when every STRING occurs in PID's command line.
pid_cmdline_has() {
	local pid=$1 cmd s
	shift
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	for s in "$@"; do
		[[ $cmd == *"$s"* ]] || return 1
	done
}

# wait_pid_exit PID SECONDS: wait until PID is gone; false on timeout.
wait_pid_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while pid_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# apt_install PKG...: install Debian packages (needs root or sudo).
apt_install() {
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
		sudo=(sudo)
	fi
	log "installing $* with apt-get"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# stop_process PID PIDFILE TIMEOUT WHERE: stop the server PID ("" when it
# is not running) with SIGTERM, SIGKILL after TIMEOUT seconds, and remove
# its PIDFILE. WHERE names it in messages.
stop_process() {
	local pid=$1 pidfile=$2 timeout=$3 where=$4
	if [[ -z $pid ]]; then
		rm -f "$pidfile"
		log "not running ($where)"
		return 0
	fi
	log "stopping pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_pid_exit "$pid" "$timeout"; then
		log "still running after ${timeout}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_pid_exit "$pid" 10 || die "pid $pid survived SIGKILL"
	fi
	rm -f "$pidfile"
	log "stopped"
}
