#!/usr/bin/env bash
# Run a command with real Kafka, PostgreSQL and Apicurio Registry servers available:
#
#   deploy/scripts/with-servers.sh go test ./...
#
# - Kafka is started (deploy/scripts/kafka.sh) unless EVENTMART_TEST_KAFKA is set;
#   PostgreSQL (deploy/scripts/postgres.sh) unless EVENTMART_TEST_POSTGRES is set;
#   Apicurio Registry (deploy/scripts/apicurio.sh) unless EVENTMART_TEST_REGISTRY is set.
#   They start in parallel. A server that is already running is reused, not restarted.
# - EVENTMART_TEST_KAFKA, EVENTMART_TEST_POSTGRES and EVENTMART_TEST_REGISTRY are exported
#   to the command.
# - On exit (success, failure, Ctrl-C, SIGTERM) only the servers this script started
#   are stopped. The exit status is the command's.
# Ports etc. come from the same variables as kafka.sh / postgres.sh / apicurio.sh
# (KAFKA_PORT, PG_PORT, APICURIO_PORT...).
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

if (($# == 0)); then
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
fi

started=()
declare -A pids=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local rc=$? s
	# Finish cleaning up even if Ctrl-C is pressed again (children inherit the ignore).
	trap '' INT TERM HUP
	# Let starts still in flight finish first, or a broker could be left behind.
	if [[ -n $(jobs -pr) ]]; then
		echo "with-servers: waiting for server start-up to finish before stopping" >&2
		wait || true
	fi
	# Stop in reverse order of start.
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		s=${started[i]}
		"$SCRIPTS/$s.sh" stop 2>&1 | sed -u "s/^/[$s] /" >&2 || true
	done
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# start_bg NAME: start NAME in the background (output prefixed on stderr) and record it
# for cleanup unless it was already running; sets pids[NAME].
start_bg() {
	local s=$1
	if "$SCRIPTS/$s.sh" status >/dev/null 2>&1; then
		echo "[$s] already running; reusing it and leaving it running" >&2
	else
		# Recorded before starting: stop is harmless if start never got that far.
		started+=("$s")
	fi
	(
		# Ctrl-C must not kill a start half-way (it could leave an untracked server behind);
		# cleanup waits for the start to finish and then stops the server.
		trap '' INT
		set +e
		"$SCRIPTS/$s.sh" start 2>&1 | sed -u "s/^/[$s] /" >&2
		exit "${PIPESTATUS[0]}"
	) &
	pids[$s]=$!
}

want_kafka=0 want_pg=0 want_reg=0
[[ -n ${EVENTMART_TEST_KAFKA:-} ]] || want_kafka=1
[[ -n ${EVENTMART_TEST_POSTGRES:-} ]] || want_pg=1
[[ -n ${EVENTMART_TEST_REGISTRY:-} ]] || want_reg=1

((want_kafka)) && start_bg kafka
((want_pg)) && start_bg postgres
((want_reg)) && start_bg apicurio

failed=()
if ((want_kafka)); then
	wait "${pids[kafka]}" || failed+=(kafka)
fi
if ((want_pg)); then
	wait "${pids[postgres]}" || failed+=(postgres)
fi
if ((want_reg)); then
	wait "${pids[apicurio]}" || failed+=(apicurio)
fi
if ((${#failed[@]})); then
	echo "with-servers: failed to start: ${failed[*]}" >&2
	exit 1
fi

if ((want_kafka)); then
	export "$("$SCRIPTS/kafka.sh" env)"
fi
if ((want_pg)); then
	export "$("$SCRIPTS/postgres.sh" env)"
fi
if ((want_reg)); then
	export "$("$SCRIPTS/apicurio.sh" env)"
fi
echo "with-servers: EVENTMART_TEST_KAFKA=$EVENTMART_TEST_KAFKA EVENTMART_TEST_POSTGRES=$EVENTMART_TEST_POSTGRES EVENTMART_TEST_REGISTRY=$EVENTMART_TEST_REGISTRY" >&2

set +e
"$@"
rc=$?
set -e
exit "$rc"
