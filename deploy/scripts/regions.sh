#!/usr/bin/env bash
# Two regions of Eventmart on one machine (docs/regions.md): region A and region B, each
# with its own single-node Kafka cluster (deploy/scripts/kafka.sh) and PostgreSQL
# (deploy/scripts/postgres.sh); Eventmart (`eventmart run`) serving in A as the primary and
# in B as a warm standby (EVENTMART_REGION_ROLE=standby: reads served, writes refused);
# two replication paths A -> B: Kafka by MirrorMaker 2 (deploy/scripts/mirror.sh), and
# PostgreSQL by its own streaming replication (B's server a hot standby of A's, made with
# pg_basebackup, replication slot region_b on A). Free ports of their own: the dev servers
# (19092, 15432, 18080) are not touched.
#
# Usage: deploy/scripts/regions.sh start|stop|status|env
#        deploy/scripts/regions.sh failover      promote B, its PostgreSQL first (eventmart region failover)
#        deploy/scripts/regions.sh failback      stop B's Eventmart, re-seed A (Kafka and PostgreSQL)
#                                                from B, promote A, re-create B as A's standby
#        deploy/scripts/regions.sh kill-a        SIGKILL region A's broker, PostgreSQL and Eventmart (drills)
#
# Environment (defaults):
#   REGION_A_KAFKA=29092 (controller +1, metrics +2)  REGION_A_PG=25432  REGION_A_ADDR=127.0.0.1:28080
#   REGION_B_KAFKA=39092 (controller +1, metrics +2)  REGION_B_PG=35432  REGION_B_ADDR=127.0.0.1:38080
#   REGION_A_MIRROR_METRICS=29300 (MirrorMaker B -> A, failback)  REGION_B_MIRROR_METRICS=39300 (A -> B)
#   REGION_KAFKA_HEAP="-Xms256m -Xmx384m"
#   EVENTMART_ADMIN_EMAIL=admin@example.com EVENTMART_ADMIN_PASSWORD="change me please"
#   EVENTMART_RUN=<repo>/.run   everything under $EVENTMART_RUN/regions
set -euo pipefail

EM_NAME=regions
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SCRIPTS=$EVENTMART_REPO/deploy/scripts

A_KAFKA=${REGION_A_KAFKA:-29092}
B_KAFKA=${REGION_B_KAFKA:-39092}
A_PG=${REGION_A_PG:-25432}
B_PG=${REGION_B_PG:-35432}
A_ADDR=${REGION_A_ADDR:-127.0.0.1:28080}
B_ADDR=${REGION_B_ADDR:-127.0.0.1:38080}
A_MIRROR_METRICS=${REGION_A_MIRROR_METRICS:-29300}
B_MIRROR_METRICS=${REGION_B_MIRROR_METRICS:-39300}
KAFKA_HEAP=${REGION_KAFKA_HEAP:--Xms256m -Xmx384m}
ADMIN_EMAIL=${EVENTMART_ADMIN_EMAIL:-admin@example.com}
ADMIN_PASSWORD=${EVENTMART_ADMIN_PASSWORD:-change me please}

DIR=$EVENTMART_RUN/regions
BIN=$DIR/bin/eventmart
# The component scripts keep their run directories under ours.
export EVENTMART_RUN=$DIR

kafka_port() { [[ $1 == a ]] && echo "$A_KAFKA" || echo "$B_KAFKA"; }
pg_port() { [[ $1 == a ]] && echo "$A_PG" || echo "$B_PG"; }
addr_of() { [[ $1 == a ]] && echo "$A_ADDR" || echo "$B_ADDR"; }
upper() { tr a-z A-Z <<<"$1"; }

kafka() { # REGION ARGS...
	local p
	p=$(kafka_port "$1")
	shift
	KAFKA_PORT=$p KAFKA_CONTROLLER_PORT=$((p + 1)) KAFKA_METRICS_PORT=$((p + 2)) KAFKA_HEAP_OPTS=$KAFKA_HEAP \
		"$SCRIPTS/kafka.sh" "$@"
}

postgres() { # REGION ARGS...
	local p
	p=$(pg_port "$1")
	shift
	PG_PORT=$p "$SCRIPTS/postgres.sh" "$@"
}

# pg_url REGION: its PostgreSQL server.
pg_url() { echo "postgres://postgres@127.0.0.1:$(pg_port "$1")/postgres?sslmode=disable"; }

# pg_standby REGION FROM: REGION's PostgreSQL re-made as a hot standby of
# FROM's (pg_basebackup -R, replication slot region_<REGION> on FROM's).
pg_standby() {
	postgres "$1" stop || true
	rm -f "$DIR/postgres-$1.seeded"
	PG_SLOT=region_$1 postgres "$1" start --fresh --replica-of "$(pg_port "$2")"
	touch "$DIR/postgres-$1.seeded"
}

# mirror FROM TO ARGS...: MirrorMaker replicating region FROM into region TO.
mirror() {
	local from=$1 to=$2
	shift 2
	local metrics=$B_MIRROR_METRICS
	[[ $to == a ]] && metrics=$A_MIRROR_METRICS
	MIRROR_SOURCE=127.0.0.1:$(kafka_port "$from") MIRROR_TARGET=127.0.0.1:$(kafka_port "$to") \
		MIRROR_SOURCE_ALIAS=$(upper "$from") MIRROR_TARGET_ALIAS=$(upper "$to") MIRROR_METRICS_PORT=$metrics \
		"$SCRIPTS/mirror.sh" "$@"
}

# The environment of region R's Eventmart, with ROLE.
write_env() { # REGION ROLE
	local r=$1 role=$2 other=a
	[[ $r == a ]] && other=b
	# The secrets both regions share, which the replicated database does not
	# carry: the token signing key (a token from A reads in B) and the card
	# vault keys (B's payment service charges the cards A vaulted).
	[[ -s $DIR/jwt.secret ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/jwt.secret"
	[[ -s $DIR/card.keys ]] || { printf 'k1:'; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; } >"$DIR/card.keys"
	cat >"$DIR/region-$r.env" <<EOF
export EVENTMART_BUS=kafka://127.0.0.1:$(kafka_port "$r")
export EVENTMART_DB='postgres://postgres@127.0.0.1:$(pg_port "$r")/eventmart?sslmode=disable'
export EVENTMART_ADDR=$(addr_of "$r")
export EVENTMART_DATA=$DIR/data-$r
export EVENTMART_REGION_ROLE=$role
export EVENTMART_REGION_PRIMARY=http://$(addr_of "$other")
export EVENTMART_JWT_SECRET=$(cat "$DIR/jwt.secret")
export EVENTMART_CARD_KEYS=$(cat "$DIR/card.keys")
export EVENTMART_ADMIN_EMAIL='$ADMIN_EMAIL'
export EVENTMART_ADMIN_PASSWORD='$ADMIN_PASSWORD'
export EVENTMART_INSTANCE_ID=region-$r
export EVENTMART_CARRIER_DISPATCH_AFTER=\${EVENTMART_CARRIER_DISPATCH_AFTER:-1s}
export EVENTMART_CARRIER_DELIVER_AFTER=\${EVENTMART_CARRIER_DELIVER_AFTER:-2s}
EOF
}

app_pid() { # REGION
	local f=$DIR/eventmart-$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	pid_alive "$pid" && pid_cmdline_has "$pid" "$BIN" run || return 1
	echo "$pid"
}

# listening LOG: how many starts the log shows (it is appended to across restarts).
listening() {
	local n
	n=$(grep -c "listening on" "$1" 2>/dev/null) || true
	echo "${n:-0}"
}

app_start() { # REGION ROLE
	local r=$1 pid log=$DIR/eventmart-$1.log
	app_pid "$r" >/dev/null && return 0
	write_env "$r" "$2"
	local before
	before=$(listening "$log")
	# shellcheck disable=SC1090
	(
		. "$DIR/region-$r.env"
		"$BIN" topics apply >"$DIR/topics-$r.out" 2>&1 || { cat "$DIR/topics-$r.out" >&2; exit 1; }
		exec setsid nohup "$BIN" run >>"$log" 2>&1 </dev/null
	) &
	pid=$!
	echo "$pid" >"$DIR/eventmart-$r.pid"
	local t
	for ((t = 0; t < 900; t++)); do
		(($(listening "$log") > before)) && {
			log "region $(upper "$r"): Eventmart ($2) on http://$(addr_of "$r") (pid $pid)"
			return 0
		}
		pid_alive "$pid" || break
		sleep 0.1
	done
	tail -20 "$log" >&2
	die "region $(upper "$r"): Eventmart did not start; see $log"
}

app_stop() { # REGION [SIGNAL]
	local pid
	pid=$(app_pid "$1") || { rm -f "$DIR/eventmart-$1.pid"; return 0; }
	kill "-${2:-TERM}" "$pid" 2>/dev/null || true
	wait_pid_exit "$pid" 30 || { kill -KILL "$pid" 2>/dev/null || true; wait_pid_exit "$pid" 10 || true; }
	rm -f "$DIR/eventmart-$1.pid"
}

build() {
	command -v go >/dev/null || die "go not found"
	mkdir -p "$DIR/bin"
	(cd "$EVENTMART_REPO" && go build -o "$BIN" ./cmd/eventmart)
}

# start_standby R FROM: R's PostgreSQL made a hot standby of FROM's the
# first time (later starts resume it as it is: still streaming, or promoted
# by a failover), then R's Eventmart as a standby. FROM's Eventmart has
# created and migrated the services' databases: they arrive replicated.
start_standby() {
	local r=$1 from=$2
	if [[ -f $DIR/postgres-$r.seeded ]]; then
		postgres "$r" start
	else
		pg_standby "$r" "$from"
	fi
	app_start "$r" standby
}

cmd_start() {
	build
	"$SCRIPTS/mirror.sh" install
	postgres a install
	# Both brokers at once (each takes ~15 s on a small machine).
	kafka a start & local ka=$!
	kafka b start & local kb=$!
	wait "$ka" && wait "$kb" || die "a region's Kafka did not start"
	postgres a start
	app_start a primary
	start_standby b a
	mirror a b start
	cmd_env
}

cmd_stop() {
	app_stop a || true
	app_stop b || true
	mirror a b stop || true
	mirror b a stop || true
	kafka a stop & kafka b stop & wait
	postgres a stop || true
	postgres b stop || true
}

cmd_status() {
	local down=0 r pid
	for r in a b; do
		echo "region $(upper "$r"):"
		kafka "$r" status | sed 's/^/  /' || down=1
		postgres "$r" status | sed 's/^/  /' || down=1
		if pid=$(app_pid "$r"); then
			echo "  eventmart: running (pid $pid) on http://$(addr_of "$r"), $(sed -n 's/^export EVENTMART_REGION_ROLE=//p' "$DIR/region-$r.env") at start"
		else
			echo "  eventmart: down"
			down=1
		fi
		# The role recorded in the region's cluster, MirrorMaker's heartbeats, checkpoints and offset syncs.
		{ "$BIN" region status --bus "kafka://127.0.0.1:$(kafka_port "$r")" 2>/dev/null || echo "role: unknown"; } | sed 's/^/  /'
	done
	mirror a b status | sed 's/^/A -> B /' || true
	mirror b a status | sed 's/^/B -> A /' || true
	((down == 0)) || return 3
}

cmd_env() {
	cat <<EOF
REGION_A=http://$A_ADDR
REGION_B=http://$B_ADDR
REGION_A_BUS=kafka://127.0.0.1:$A_KAFKA
REGION_B_BUS=kafka://127.0.0.1:$B_KAFKA
MIRROR_METRICS=http://127.0.0.1:$B_MIRROR_METRICS/metrics
EVENTMART_ADMIN_EMAIL=$ADMIN_EMAIL
EVENTMART_ADMIN_PASSWORD=$ADMIN_PASSWORD
EOF
}

# failover: B becomes the primary. Replication A -> B is stopped by the
# command itself (the stop command below), A is fenced if it answers.
cmd_failover() {
	[[ -x $BIN ]] || build
	local stop
	# The source is gone: MirrorMaker's graceful stop would wait on it.
	stop="MIRROR_STOP_TIMEOUT=5 MIRROR_SOURCE=127.0.0.1:$A_KAFKA MIRROR_TARGET=127.0.0.1:$B_KAFKA MIRROR_SOURCE_ALIAS=A MIRROR_TARGET_ALIAS=B MIRROR_METRICS_PORT=$B_MIRROR_METRICS EVENTMART_RUN=$DIR $SCRIPTS/mirror.sh stop"
	"$BIN" region failover --bus "kafka://127.0.0.1:$B_KAFKA" --from "kafka://127.0.0.1:$A_KAFKA" \
		--source-alias A --stop-replication "$stop" --db "$(pg_url b)"
}

# failback (planned): B's Eventmart stops (writes pause; what it committed
# reaches A with its database, unrelayed outbox rows included); A gets a
# fresh Kafka re-seeded by MirrorMaker B -> A and a PostgreSQL re-seeded
# from B's (pg_basebackup), its Eventmart restarts as a standby, then A is
# promoted (B fenced, A's PostgreSQL caught up and promoted); B is then
# re-created as a fresh standby of A.
cmd_failback() {
	build
	app_stop a
	app_stop b
	mirror a b stop || true
	kafka a stop || true
	kafka a start --fresh
	pg_standby a b
	app_start a standby
	mirror b a start
	local stop
	stop="MIRROR_SOURCE=127.0.0.1:$B_KAFKA MIRROR_TARGET=127.0.0.1:$A_KAFKA MIRROR_SOURCE_ALIAS=B MIRROR_TARGET_ALIAS=A MIRROR_METRICS_PORT=$A_MIRROR_METRICS EVENTMART_RUN=$DIR $SCRIPTS/mirror.sh stop"
	"$BIN" region failback --bus "kafka://127.0.0.1:$A_KAFKA" --from "kafka://127.0.0.1:$B_KAFKA" \
		--source-alias B --stop-replication "$stop" --db "$(pg_url a)" --db-from "$(pg_url b)"
	log "re-creating region B as a fresh standby of A"
	kafka b stop || true
	kafka b start --fresh
	pg_standby b a
	app_start b standby
	mirror a b start
}

cmd_kill_a() {
	local pid
	pid=$(app_pid a) && kill -KILL "$pid" 2>/dev/null || true
	rm -f "$DIR/eventmart-a.pid"
	pid=$(cat "$DIR/kafka-$A_KAFKA/kafka.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null || true
	wait_pid_exit "$pid" 10 || true
	local data
	data=$(postgres a status 2>/dev/null | sed -n 's/.*, data //p') || true
	if [[ -n $data ]] && pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null); then
		kill -KILL "$pid" 2>/dev/null || true
		wait_pid_exit "$pid" 10 || true
	fi
	log "region A killed (SIGKILL: broker, PostgreSQL and Eventmart)"
}

mkdir -p "$DIR"
case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
failover) cmd_failover ;;
failback) cmd_failback ;;
kill-a) cmd_kill_a ;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
