#!/usr/bin/env bash
# Apicurio Registry (in-memory storage) for tests and development, serving the
# Confluent-compatible schema registry API at http://127.0.0.1:$APICURIO_PORT/apis/ccompat/v7.
# No Docker: the Quarkus distribution comes from Maven Central via deploy/apicurio/pom.xml.
#
# Usage: deploy/scripts/apicurio.sh install|start|stop|restart|status|env|logs|version|java
#
#   install   unpack the distribution into $EVENTMART_CACHE/apicurio-<version> (once)
#   start     start on 127.0.0.1:$APICURIO_PORT in the background, wait until the API
#             answers, and set the global compatibility level to BACKWARD
#   stop      SIGTERM, wait $APICURIO_STOP_TIMEOUT s, then SIGKILL
#   status    exit 0 when running, 3 when not
#   env       print EVENTMART_TEST_REGISTRY=http://127.0.0.1:<port>/apis/ccompat/v7
#   logs      tail the log
#   java      print the java binary it runs on (exit 1 if there is no Java 21+)
#
# Apicurio Registry 3.x needs Java 21+. The first of $APICURIO_JAVA_HOME, $JAVA_HOME,
# `java` on PATH and /usr/lib/jvm/* that is 21 or newer runs it.
#
# Environment (defaults):
#   APICURIO_PORT=18080 APICURIO_MANAGEMENT_PORT=APICURIO_PORT+1 (Quarkus health/metrics, 127.0.0.1)
#   EVENTMART_RUN=<repo>/.run          logs, pid file in $EVENTMART_RUN/apicurio-<port>
#   EVENTMART_CACHE=~/.cache/eventmart distribution in $EVENTMART_CACHE/apicurio-<version>
#   APICURIO_START_TIMEOUT=90 APICURIO_STOP_TIMEOUT=20 (seconds)
#   APICURIO_HEAP_OPTS="-Xms64m -Xmx384m"  APICURIO_JVM_OPTS (extra JVM flags)
set -euo pipefail

EM_NAME=apicurio
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APICURIO_PORT=${APICURIO_PORT:-18080}
APICURIO_MANAGEMENT_PORT=${APICURIO_MANAGEMENT_PORT:-$((APICURIO_PORT + 1))}
APICURIO_START_TIMEOUT=${APICURIO_START_TIMEOUT:-90}
APICURIO_STOP_TIMEOUT=${APICURIO_STOP_TIMEOUT:-20}
APICURIO_HEAP_OPTS=${APICURIO_HEAP_OPTS:--Xms64m -Xmx384m}

POM=$EVENTMART_REPO/deploy/apicurio/pom.xml
APICURIO_VERSION=$(sed -n 's:.*<apicurio\.version>\(.*\)</apicurio\.version>.*:\1:p' "$POM")
[[ -n $APICURIO_VERSION ]] || die "cannot read <apicurio.version> from $POM"
HOME_DIR=$EVENTMART_CACHE/apicurio-$APICURIO_VERSION

DIR=$EVENTMART_RUN/apicurio-$APICURIO_PORT
LOGS=$DIR/logs
PIDFILE=$DIR/apicurio.pid
API=/apis/ccompat/v7

[[ $APICURIO_PORT =~ ^[0-9]+$ && $APICURIO_MANAGEMENT_PORT =~ ^[0-9]+$ ]] || die "APICURIO_PORT and APICURIO_MANAGEMENT_PORT must be numbers"

pom_sum() { sha256sum "$POM" | cut -d' ' -f1; }

installed() {
	[[ -f $HOME_DIR/.installed && $(cat "$HOME_DIR/.installed") == "$(pom_sum)" && -f $HOME_DIR/quarkus-run.jar ]]
}

cmd_install() {
	installed && return 0
	command -v mvn >/dev/null || die "mvn not found (Maven 3.8+ is required)"
	mkdir -p "$EVENTMART_CACHE"
	exec 8>"$EVENTMART_CACHE/.apicurio-install.lock"
	flock 8
	if ! installed; then
		log "installing Apicurio Registry $APICURIO_VERSION from Maven Central into $HOME_DIR"
		local tmp
		tmp=$(mktemp -d "$EVENTMART_CACHE/.apicurio-install.XXXXXX")
		# The pom is copied so that Maven's target/ (and its unpack markers) stay in tmp.
		mkdir "$tmp/.mvn-project"
		cp "$POM" "$tmp/.mvn-project/pom.xml"
		if ! mvn -B -q -Dstyle.color=never -f "$tmp/.mvn-project/pom.xml" dependency:unpack \
			-DoutputDirectory="$tmp" >"$tmp/mvn.log" 2>&1; then
			cat "$tmp/mvn.log" >&2
			rm -rf "$tmp"
			die "mvn dependency:unpack failed for $POM"
		fi
		rm -rf "$tmp/mvn.log" "$tmp/.mvn-project"
		[[ -f $tmp/quarkus-run.jar ]] || {
			rm -rf "$tmp"
			die "quarkus-run.jar missing after mvn"
		}
		pom_sum >"$tmp/.installed"
		rm -rf "$HOME_DIR"
		mv "$tmp" "$HOME_DIR"
	fi
	exec 8>&-
}

# java_major JAVA: the major version of that java binary, or nothing.
java_major() {
	local spec
	spec=$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p') || return 1
	echo "${spec%%.*}"
}

# find_java: prints a java binary of version 21 or newer.
find_java() {
	local c m
	local candidates=()
	[[ -n ${APICURIO_JAVA_HOME:-} ]] && candidates+=("$APICURIO_JAVA_HOME/bin/java")
	[[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
	command -v java >/dev/null && candidates+=("$(command -v java)")
	for c in $(printf '%s\n' /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
		candidates+=("$c")
	done
	for c in "${candidates[@]}"; do
		[[ -x $c ]] || continue
		m=$(java_major "$c") || continue
		if [[ $m =~ ^[0-9]+$ ]] && ((m >= 21)); then
			echo "$c"
			return 0
		fi
	done
	return 1
}

# http METHOD PATH [BODY]: a plain HTTP/1.0 request to the registry (no curl needed);
# prints the status line's code and then the body.
http() {
	local method=$1 path=$2 body=${3:-} resp
	exec 7<>"/dev/tcp/127.0.0.1/$APICURIO_PORT" || return 1
	printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: %d\r\n\r\n%s' \
		"$method" "$path" "$APICURIO_PORT" "${#body}" "$body" >&7
	resp=$(timeout 5 cat <&7) || true
	exec 7>&-
	local status=${resp%%$'\r'*}
	status=${status#HTTP/1.? }
	echo "${status%% *}"
	echo "${resp#*$'\r\n\r\n'}"
}

ready() {
	local out
	out=$(http GET "$API/subjects" 2>/dev/null) || return 1
	[[ ${out%%$'\n'*} == 200 ]]
}

running_pid() {
	local pid
	[[ -f $PIDFILE ]] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	pid_alive "$pid" && pid_cmdline_has "$pid" quarkus-run.jar "quarkus.http.port=$APICURIO_PORT" || return 1
	echo "$pid"
}

cmd_start() {
	local pid java
	cmd_install
	mkdir -p "$DIR" "$LOGS"
	if pid=$(running_pid); then
		log "already running (pid $pid) on 127.0.0.1:$APICURIO_PORT"
		wait_ready "$pid" || die "pid $pid is running but not answering; see $LOGS/apicurio.log"
		return 0
	fi
	rm -f "$PIDFILE"
	local p
	for p in "$APICURIO_PORT" "$APICURIO_MANAGEMENT_PORT"; do
		! port_in_use "$p" || die "port 127.0.0.1:$p is already in use by another process (set APICURIO_PORT / APICURIO_MANAGEMENT_PORT)"
	done
	java=$(find_java) || die "Apicurio Registry $APICURIO_VERSION needs Java 21+; none found (set APICURIO_JAVA_HOME)"

	local heap extra
	read -r -a heap <<<"$APICURIO_HEAP_OPTS"
	read -r -a extra <<<"${APICURIO_JVM_OPTS:-}"
	local t0=$SECONDS log_off
	log_off=$(stat -c %s "$LOGS/apicurio.log" 2>/dev/null || echo 0)
	log "starting Apicurio Registry $APICURIO_VERSION on 127.0.0.1:$APICURIO_PORT (java $(java_major "$java"), dir $DIR)"
	# In-memory storage (the default). The management interface (on 0.0.0.0:9000 by
	# default) moves next to the API port on loopback, so instances never clash.
	(cd "$DIR" && exec setsid nohup "$java" "${heap[@]}" -XX:+UseSerialGC \
		-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$APICURIO_PORT" \
		-Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$APICURIO_MANAGEMENT_PORT" \
		-Dquarkus.log.console.color=false \
		"${extra[@]}" -jar "$HOME_DIR/quarkus-run.jar" >>"$LOGS/apicurio.log" 2>&1 </dev/null) &
	pid=$!
	echo "$pid" >"$PIDFILE"
	if ! wait_ready "$pid"; then
		local why="did not answer within ${APICURIO_START_TIMEOUT}s"
		pid_alive "$pid" || why="exited during start-up"
		log "registry $why; last lines of $LOGS/apicurio.log:"
		tail -c +$((log_off + 1)) "$LOGS/apicurio.log" | tail -n 30 >&2 || true
		cmd_stop >/dev/null 2>&1 || true
		die "Apicurio Registry $why (127.0.0.1:$APICURIO_PORT)"
	fi
	# Confluent's default level; Apicurio's own default is NONE.
	local out
	out=$(http PUT "$API/config" '{"compatibility":"BACKWARD"}') || die "setting the global compatibility level failed"
	[[ ${out%%$'\n'*} == 200 ]] || die "setting the global compatibility level failed: $out"
	log "ready on http://127.0.0.1:$APICURIO_PORT$API (pid $pid, $((SECONDS - t0))s)"
}

wait_ready() {
	local pid=$1 deadline=$((SECONDS + APICURIO_START_TIMEOUT))
	until ready; do
		pid_alive "$pid" || return 1
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

cmd_stop() {
	local pid
	pid=$(running_pid) || pid=""
	stop_process "$pid" "$PIDFILE" "$APICURIO_STOP_TIMEOUT" "127.0.0.1:$APICURIO_PORT"
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		echo "apicurio: running (pid $pid) on 127.0.0.1:$APICURIO_PORT, dir $DIR"
	else
		echo "apicurio: not running (127.0.0.1:$APICURIO_PORT)"
		return 3
	fi
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_stop; cmd_start ;;
status) cmd_status ;;
env) echo "EVENTMART_TEST_REGISTRY=http://127.0.0.1:$APICURIO_PORT$API" ;;
logs) tail -n 100 -F "$LOGS/apicurio.log" ;;
version) echo "$APICURIO_VERSION" ;;
java) find_java ;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
