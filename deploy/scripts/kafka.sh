#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for tests and development.
# No Docker: the broker jars come from Maven Central via deploy/kafka/pom.xml.
#
# Usage: deploy/scripts/kafka.sh install|start [--fresh]|stop|restart [--fresh]|status|env|logs|version
#        deploy/scripts/kafka.sh javaagent PORT
#
#   install   copy the broker jars into $EVENTMART_CACHE/kafka-<version>/lib and the
#             Prometheus JMX exporter agent into .../agent (once)
#   start     start on 127.0.0.1:$KAFKA_PORT in the background and wait until a real
#             Kafka client (internal/devtools/kafkawait) gets metadata; --fresh wipes data.
#             Broker metrics for Prometheus: http://127.0.0.1:$KAFKA_METRICS_PORT/metrics
#             (the JMX exporter agent with the rules in deploy/kafka/jmx-exporter.yml)
#   stop      SIGTERM, wait $KAFKA_STOP_TIMEOUT s, then SIGKILL
#   status    exit 0 when running, 3 when not
#   env       print EVENTMART_TEST_KAFKA=127.0.0.1:<port>
#   logs      tail the broker log
#   javaagent print the JVM flag that serves a broker's metrics on 127.0.0.1:PORT (cluster.sh)
#
# Environment (defaults):
#   KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_METRICS_PORT=19094
#   EVENTMART_RUN=<repo>/.run          data, logs, pid file in $EVENTMART_RUN/kafka-<port>
#   EVENTMART_CACHE=~/.cache/eventmart jars in $EVENTMART_CACHE/kafka-<version>/lib
#   KAFKA_START_TIMEOUT=90 KAFKA_STOP_TIMEOUT=30 (seconds)
#   KAFKA_HEAP_OPTS="-Xms512m -Xmx1g"  KAFKA_JVM_OPTS (extra JVM flags)
set -euo pipefail

EM_NAME=kafka
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_METRICS_PORT=${KAFKA_METRICS_PORT:-19094}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}

POM=$EVENTMART_REPO/deploy/kafka/pom.xml
LOG4J_CONF=$EVENTMART_REPO/deploy/kafka/log4j2.properties
KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$POM")
[[ -n $KAFKA_VERSION ]] || die "cannot read <kafka.version> from $POM"
HOME_DIR=$EVENTMART_CACHE/kafka-$KAFKA_VERSION
LIB=$HOME_DIR/lib
# io.prometheus.jmx:jmx_prometheus_javaagent: 1.0.1 is the newest agent on Maven Central
# (1.1.0 and later are published elsewhere). Cached apart from the broker jars, off
# their classpath: it is loaded with -javaagent.
JMX_EXPORTER_VERSION=1.0.1
AGENT_DIR=$EVENTMART_CACHE/jmx-exporter-$JMX_EXPORTER_VERSION
AGENT=$AGENT_DIR/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar
JMX_RULES=$EVENTMART_REPO/deploy/kafka/jmx-exporter.yml

DIR=$EVENTMART_RUN/kafka-$KAFKA_PORT
DATA=$DIR/data
LOGS=$DIR/logs
CONF=$DIR/server.properties
PIDFILE=$DIR/kafka.pid
WAITER=$EVENTMART_RUN/bin/kafkawait

JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

[[ $KAFKA_PORT =~ ^[0-9]+$ && $KAFKA_CONTROLLER_PORT =~ ^[0-9]+$ && $KAFKA_METRICS_PORT =~ ^[0-9]+$ ]] ||
	die "KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_METRICS_PORT must be numbers"
[[ $KAFKA_PORT != "$KAFKA_CONTROLLER_PORT" && $KAFKA_METRICS_PORT != "$KAFKA_PORT" && $KAFKA_METRICS_PORT != "$KAFKA_CONTROLLER_PORT" ]] ||
	die "KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_METRICS_PORT must differ"

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

installed() {
	[[ -f $HOME_DIR/.installed && $(cat "$HOME_DIR/.installed") == "$(pom_sum)" && -f $LIB/kafka_2.13-$KAFKA_VERSION.jar ]]
}

# javaagent PORT: the JVM flag that makes a broker serve its metrics (JMX MBeans
# mapped by the rules file, and the JVM's) at http://127.0.0.1:PORT/metrics.
javaagent() {
	echo "-javaagent:$AGENT=127.0.0.1:$1:$JMX_RULES"
}

cmd_install() {
	installed && [[ -f $AGENT ]] && return 0
	command -v mvn >/dev/null || die "mvn not found (Maven 3.8+ and Java 17+ are required)"
	mkdir -p "$EVENTMART_CACHE"
	# Serialise concurrent installs (parallel CI jobs, with-servers.sh).
	exec 9>"$EVENTMART_CACHE/.kafka-install.lock"
	flock 9
	if ! installed; then
		log "installing Kafka $KAFKA_VERSION jars from Maven Central into $LIB"
		local tmp
		tmp=$(mktemp -d "$EVENTMART_CACHE/.kafka-install.XXXXXX")
		if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
			-DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
			cat "$tmp/mvn.log" >&2
			rm -rf "$tmp"
			die "mvn dependency:copy-dependencies failed for $POM"
		fi
		rm -f "$tmp/mvn.log"
		[[ -f $tmp/lib/kafka_2.13-$KAFKA_VERSION.jar ]] || {
			rm -rf "$tmp"
			die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
		}
		pom_sum >"$tmp/.installed"
		rm -rf "$HOME_DIR"
		mv "$tmp" "$HOME_DIR"
	fi
	if [[ ! -f $AGENT ]]; then
		log "installing the Prometheus JMX exporter agent $JMX_EXPORTER_VERSION from Maven Central into $AGENT_DIR"
		local tmp
		tmp=$(mktemp -d "$EVENTMART_CACHE/.jmx-exporter-install.XXXXXX")
		if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy \
			-Dartifact="io.prometheus.jmx:jmx_prometheus_javaagent:$JMX_EXPORTER_VERSION" \
			-DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1 || [[ ! -f $tmp/${AGENT##*/} ]]; then
			cat "$tmp/mvn.log" >&2
			rm -rf "$tmp"
			die "mvn dependency:copy of the JMX exporter agent $JMX_EXPORTER_VERSION failed"
		fi
		rm -f "$tmp/mvn.log"
		rm -rf "$AGENT_DIR"
		mv "$tmp" "$AGENT_DIR"
	fi
	exec 9>&-
}

# Prints the broker pid when our broker is running.
running_pid() {
	local pid
	[[ -f $PIDFILE ]] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	pid_alive "$pid" && pid_cmdline_has "$pid" kafka.Kafka "$CONF" || return 1
	echo "$pid"
}

# The readiness probe is built in the background (a cold Go cache needs ~20 s to fetch
# and compile franz-go) while Maven and the JVM do their part.
build_waiter_start() {
	command -v go >/dev/null || die "go not found (needed to build internal/devtools/kafkawait)"
	mkdir -p "$(dirname "$WAITER")"
	(
		cd "$EVENTMART_REPO" &&
			go build -o "$WAITER.$$" ./internal/devtools/kafkawait &&
			mv -f "$WAITER.$$" "$WAITER" # atomic: parallel starts may build it too
	) &
	WAITER_BUILD=$!
}

build_waiter_wait() {
	wait "$WAITER_BUILD" || {
		rm -f "$WAITER.$$"
		return 1
	}
}

# Kafka cluster ids are 16 random bytes, base64url without padding (Uuid.toString);
# Kafka avoids ids starting with '-'. Saves a JVM start versus StorageTool random-uuid.
new_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ ${#id} == 22 && $id != -* ]] && break
	done
	echo "$id"
}

write_config() {
	cat >"$CONF" <<EOF
# Generated by deploy/scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA

# One node: every internal topic has replication factor 1.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Fast tests: few internal partitions, no rebalance delay.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

# Topics are created explicitly, as in production.
auto.create.topics.enable=false
# Retention tests (with a short segment.ms on the topic) need frequent checks.
log.retention.check.interval.ms=5000
EOF
}

cmd_start() {
	local fresh=0 arg pid
	for arg in "$@"; do
		case $arg in
		--fresh) fresh=1 ;;
		*) die "start: unknown option $arg" ;;
		esac
	done

	build_waiter_start
	cmd_install
	mkdir -p "$DIR"

	if pid=$(running_pid); then
		if ((fresh)); then
			log "--fresh: stopping the running broker (pid $pid) first"
			cmd_stop
		else
			log "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
			build_waiter_wait || die "building internal/devtools/kafkawait failed"
			"$WAITER" -brokers "127.0.0.1:$KAFKA_PORT" -timeout "${KAFKA_START_TIMEOUT}s" -pid "$pid" -q ||
				die "broker pid $pid is running but not answering; see $LOGS/server.log"
			return 0
		fi
	fi
	rm -f "$PIDFILE"

	local p
	for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_METRICS_PORT"; do
		! port_in_use "$p" || die "port 127.0.0.1:$p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_METRICS_PORT)"
	done

	if ((fresh)); then
		log "--fresh: wiping $DATA"
		rm -rf "$DATA" "$LOGS"
	fi
	mkdir -p "$DATA" "$LOGS"
	write_config

	local heap extra
	read -r -a heap <<<"$KAFKA_HEAP_OPTS"
	read -r -a extra <<<"${KAFKA_JVM_OPTS:-}"
	local jvm=(
		"$JAVA" -server "${heap[@]}"
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
		-XX:+ExplicitGCInvokesConcurrent -XX:ErrorFile="$LOGS/hs_err_pid%p.log"
		-Djava.awt.headless=true
		-Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOGS"
		"${extra[@]}"
		-cp "$LIB/*"
	)

	if [[ ! -f $DATA/meta.properties ]]; then
		[[ -s $DIR/cluster.id ]] || new_cluster_id >"$DIR/cluster.id"
		"${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
			-t "$(cat "$DIR/cluster.id")" -c "$CONF" >"$LOGS/format.out" 2>&1 || {
			cat "$LOGS/format.out" >&2
			die "kafka-storage format failed"
		}
	fi

	# Remember where this run's output begins, to show only it on failure.
	local t0=$SECONDS log_off out_off
	log_off=$(stat -c %s "$LOGS/server.log" 2>/dev/null || echo 0)
	out_off=$(stat -c %s "$LOGS/kafka.out" 2>/dev/null || echo 0)
	log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, metrics :$KAFKA_METRICS_PORT, dir $DIR)"
	# setsid: own session, so a Ctrl-C in the terminal does not hit the broker directly;
	# the subshell execs into java, so $! is the broker pid. The agent only on the
	# broker, not on StorageTool above (it would bind the metrics port).
	(cd "$DIR" && exec setsid nohup "${jvm[@]}" "$(javaagent "$KAFKA_METRICS_PORT")" kafka.Kafka "$CONF" >>"$LOGS/kafka.out" 2>&1 </dev/null) &
	pid=$!
	echo "$pid" >"$PIDFILE"

	if ! build_waiter_wait; then
		cmd_stop >/dev/null 2>&1 || true
		die "building internal/devtools/kafkawait failed"
	fi
	if ! "$WAITER" -brokers "127.0.0.1:$KAFKA_PORT" -timeout "${KAFKA_START_TIMEOUT}s" -pid "$pid" -q; then
		local why="did not answer within ${KAFKA_START_TIMEOUT}s"
		pid_alive "$pid" || why="exited during start-up"
		log "broker $why; last lines of $LOGS/server.log:"
		tail -c +$((log_off + 1)) "$LOGS/server.log" 2>/dev/null | tail -n 40 >&2 || true
		if [[ $(stat -c %s "$LOGS/kafka.out" 2>/dev/null || echo 0) -gt $out_off ]]; then
			log "last lines of $LOGS/kafka.out (stdout/stderr, WARN and above):"
			tail -c +$((out_off + 1)) "$LOGS/kafka.out" | tail -n 20 >&2
		fi
		cmd_stop >/dev/null 2>&1 || true
		die "Kafka $why (127.0.0.1:$KAFKA_PORT)"
	fi
	log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid, $((SECONDS - t0))s)"
}

cmd_stop() {
	local pid
	pid=$(running_pid) || pid=""
	stop_process "$pid" "$PIDFILE" "$KAFKA_STOP_TIMEOUT" "127.0.0.1:$KAFKA_PORT"
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		echo "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT, metrics http://127.0.0.1:$KAFKA_METRICS_PORT/metrics, dir $DIR"
	else
		echo "kafka: not running (127.0.0.1:$KAFKA_PORT)"
		return 3
	fi
}

case ${1:-} in
install) cmd_install ;;
start) shift; cmd_start "$@" ;;
stop) cmd_stop ;;
restart) shift; cmd_stop; cmd_start "$@" ;;
status) cmd_status ;;
env) echo "EVENTMART_TEST_KAFKA=127.0.0.1:$KAFKA_PORT" ;;
logs) tail -n 100 -F "$LOGS/server.log" ;;
version) echo "$KAFKA_VERSION" ;;
javaagent)
	[[ ${2:-} =~ ^[0-9]+$ ]] || die "javaagent PORT"
	javaagent "$2"
	;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
