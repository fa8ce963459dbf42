#!/usr/bin/env bash
# Run every Eventmart service as its own `eventmart serve` process, plus the
# gateway, on Kafka and PostgreSQL:
#
#   deploy/scripts/services.sh start   # needs EVENTMART_BUS=kafka://… and EVENTMART_DB=postgres://…
#   deploy/scripts/services.sh stop
#
# Ports: services (as `eventmart services` lists them) on ${SERVICES_BASE_PORT:-8101} and up, the gateway on
# ${EVENTMART_ADDR:-127.0.0.1:8080}. Logs and pid files in ${EVENTMART_RUN:-<repo>/.run}/services.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
run=${EVENTMART_RUN:-$repo/.run}/services
bin=${EVENTMART_BIN:-$repo/bin/eventmart}
base=${SERVICES_BASE_PORT:-8101}
services=() # the binary's own list (`eventmart services`), read after it is built

start() {
	: "${EVENTMART_BUS:?set EVENTMART_BUS=kafka://host:port}" "${EVENTMART_DB:?set EVENTMART_DB=postgres://…}"
	[[ -n ${EVENTMART_JWT_SECRET:-} ]] || { echo "services: set EVENTMART_JWT_SECRET (shared by every process)" >&2; exit 2; }
	mkdir -p "$run"
	(cd "$repo" && go build -o "$bin" ./cmd/eventmart)
	mapfile -t services < <("$bin" services)
	local urls=() i=0
	for s in "${services[@]}"; do urls+=("$s=http://127.0.0.1:$((base + i))"); i=$((i + 1)); done
	export EVENTMART_SERVICE_URLS
	EVENTMART_SERVICE_URLS=$(IFS=,; echo "${urls[*]}")
	"$bin" topics apply >/dev/null
	i=0
	for s in "${services[@]}" gateway; do
		local addr=127.0.0.1:$((base + i))
		[[ $s == gateway ]] && addr=${EVENTMART_ADDR:-127.0.0.1:8080}
		# Static group membership (a stable id per process) and a session
		# timeout well below the saga timeout: a restarted process gets its
		# partitions back at once instead of after the dead member's session
		# expires, so the order service never times out sagas whose events
		# sit unread meanwhile.
		EVENTMART_ADDR=$addr EVENTMART_INSTANCE_ID=${EVENTMART_INSTANCE_ID:-$s-1} \
			EVENTMART_SESSION_TIMEOUT=${EVENTMART_SESSION_TIMEOUT:-10s} \
			nohup "$bin" serve "$s" >"$run/$s.log" 2>&1 &
		echo $! >"$run/$s.pid"
		i=$((i + 1))
	done
	for s in "${services[@]}" gateway; do
		for ((t = 0; t < 300; t++)); do
			grep -q "listening on" "$run/$s.log" 2>/dev/null && break
			kill -0 "$(cat "$run/$s.pid")" 2>/dev/null || { echo "services: $s exited:" >&2; tail -20 "$run/$s.log" >&2; stop; exit 1; }
			sleep 0.1
		done
	done
	echo "services: gateway on http://${EVENTMART_ADDR:-127.0.0.1:8080}; logs in $run"
}

stop() {
	for f in "$run"/*.pid; do
		[[ -e $f ]] || continue
		kill -TERM "$(cat "$f")" 2>/dev/null || true
	done
	for f in "$run"/*.pid; do
		[[ -e $f ]] || continue
		local pid
		pid=$(cat "$f")
		for ((t = 0; t < 150; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

case ${1:-} in
start) start ;;
stop) stop ;;
*) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
esac
