# shellcheck shell=bash
# What bench-orders.sh and bench-idle.sh share, sourced after common.sh once
# their arguments are read: a work directory; Kafka and PostgreSQL of the
# script's own on BENCH_KAFKA_PORT (default 18792, +1 controller, +2
# metrics) and BENCH_PG_PORT (default 18795); Eventmart servers on free
# ports in 18900-18999; all of it stopped and removed on exit.

SCRIPTS=$EVENTMART_REPO/deploy/scripts
work=$(mktemp -d "${TMPDIR:-/tmp}/$EM_NAME.XXXXXX")
chmod 755 "$work" # PostgreSQL's OS user keeps its cluster under it
export EVENTMART_RUN=$work/run
export KAFKA_PORT=${BENCH_KAFKA_PORT:-18792}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1)) KAFKA_METRICS_PORT=$((KAFKA_PORT + 2))
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}
export PG_PORT=${BENCH_PG_PORT:-18795}
servers=() infra= kafka_started=
cleanup() {
	local p
	for p in "${servers[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	if [[ -n $infra ]]; then
		kafka_stop || true
		"$SCRIPTS/postgres.sh" stop >/dev/null 2>&1 || true
		rm -rf "/tmp/eventmart-$PG_PORT"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# The runs configure their servers (and the load generator) themselves.
unset EVENTMART_BUS EVENTMART_DB EVENTMART_SERVICE_URLS EVENTMART_TARGET EVENTMART_DATA EVENTMART_ADDR
export EVENTMART_ADMIN_EMAIL=bench-admin@example.com EVENTMART_ADMIN_PASSWORD=bench-admin-password
export EVENTMART_JWT_SECRET=$EM_NAME-secret-0123456789abcdef

# free_port [N]: the first of N (default 1) free consecutive ports in 18900-18999.
free_port() {
	local p q n=${1:-1}
	for ((p = 18900; p + n <= 19000; p++)); do
		for ((q = p; q < p + n; q++)); do port_in_use "$q" && continue 2; done
		echo "$p"
		return
	done
	die "no $n free ports in 18900-18999"
}

# wait_ready URL PID LOG: until URL/readyz answers.
wait_ready() {
	local t
	for ((t = 0; t < 600; t++)); do
		curl -sf "$1/readyz" >/dev/null 2>&1 && return 0
		pid_alive "$2" || { tail -20 "$3" >&2; die "a server exited during start-up (see above)"; }
		sleep 0.1
	done
	die "$1 not ready after 60s; see $3"
}

stop_servers() {
	local p
	for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${servers[@]}"; do wait "$p" 2>/dev/null || true; done
	servers=()
}

# infra_start: the script's PostgreSQL, once.
infra_start() {
	[[ -n $infra ]] && return 0
	infra=1
	log "starting Kafka on 127.0.0.1:$KAFKA_PORT and PostgreSQL on 127.0.0.1:$PG_PORT (the script's own)"
	"$SCRIPTS/postgres.sh" start --fresh >"$work/postgres.out" 2>&1 || { cat "$work/postgres.out" >&2; die "PostgreSQL did not start"; }
}

# kafka_stop: stop the broker and wait until its ports are free (a JVM under
# load may take a while to let go of them).
kafka_stop() {
	local p t
	"$SCRIPTS/kafka.sh" stop >/dev/null 2>&1 || true
	for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_METRICS_PORT"; do
		for ((t = 0; t < 600; t++)); do
			port_in_use "$p" || continue 2
			sleep 0.1
		done
		die "port $p still in use 60s after stopping Kafka"
	done
}

kafka_pid() { cat "$EVENTMART_RUN/kafka-$KAFKA_PORT/kafka.pid"; }

pg_pid() {
	local d
	for d in "$EVENTMART_RUN/postgres-$PG_PORT" "/tmp/eventmart-$PG_PORT"; do
		[[ -f $d/postmaster.pid ]] && { head -n 1 "$d/postmaster.pid"; return; }
	done
	die "no postmaster.pid for PostgreSQL on $PG_PORT"
}

# kafka_fresh DIR: the script's broker with no topic of an earlier run. The
# broker is started once (wiped) and kept for the whole sitting: a JVM just
# started spends its first minutes compiling itself (JIT), which is no cost
# of an order on a broker that runs for weeks, and which would fall on the
# first runs only. Between runs internal/devtools/kafkareset deletes every
# topic (and with them the groups' offsets) and every empty group.
kafka_fresh() {
	local dir=$1
	if [[ -z $kafka_started ]]; then
		kafka_started=1
		kafka_stop
		"$SCRIPTS/kafka.sh" start --fresh >"$dir/kafka.out" 2>&1 || { cat "$dir/kafka.out" >&2; die "Kafka did not start"; }
		(cd "$EVENTMART_REPO" && go build -o "$work/kafkareset" ./internal/devtools/kafkareset) || die "building internal/devtools/kafkareset failed"
		return
	fi
	"$work/kafkareset" -brokers "127.0.0.1:$KAFKA_PORT" >"$dir/kafka.out" 2>&1 || { cat "$dir/kafka.out" >&2; die "emptying Kafka failed"; }
}

# start_distributed BIN DIR DB: the broker emptied (kafka_fresh), BIN's topics, then every
# service of `BIN services` (an older build starts only those it knows) as
# its own `BIN serve` process on database DB of the script's PostgreSQL,
# and the gateway on port $base. Sets services and base, and exports
# EVENTMART_BUS, EVENTMART_DB and EVENTMART_SERVICE_URLS, through which
# `eventmart load` finds every process (unset them after stop_servers).
start_distributed() {
	local bin=$1 dir=$2 svc i=0 urls=() addr
	infra_start
	kafka_fresh "$dir"
	mapfile -t services < <("$bin" services)
	base=$(free_port $((${#services[@]} + 1)))
	for svc in "${services[@]}"; do urls+=("$svc=http://127.0.0.1:$((base + 1 + i))"); i=$((i + 1)); done
	export EVENTMART_BUS=kafka://127.0.0.1:$KAFKA_PORT
	export EVENTMART_DB="postgres://postgres@127.0.0.1:$PG_PORT/$3?sslmode=disable"
	export EVENTMART_SERVICE_URLS
	EVENTMART_SERVICE_URLS=$(IFS=,; echo "${urls[*]}")
	"$bin" topics apply >"$dir/topics.out" 2>&1 || { cat "$dir/topics.out" >&2; die "$bin topics apply failed"; }
	i=0
	for svc in "${services[@]}" gateway; do
		addr=127.0.0.1:$((base + 1 + i))
		[[ $svc == gateway ]] && addr=127.0.0.1:$base
		EVENTMART_ADDR=$addr EVENTMART_INSTANCE_ID=$svc-1 "$bin" serve "$svc" >"$dir/$svc.log" 2>&1 &
		servers+=($!)
		wait_ready "http://$addr" "$!" "$dir/$svc.log"
		i=$((i + 1))
	done
}
