#!/usr/bin/env bash
# Idle cost (issue 19 item 6): the CPU and memory of every process of an Eventmart
# that has nothing to do, embedded and distributed:
#
#   deploy/scripts/bench-idle.sh [--seconds 60] [--settle 30] [--modes embedded,distributed] [--out FILE] BIN
#
#   embedded     `BIN run` on a fresh data directory
#   distributed  one Kafka broker (deploy/scripts/kafka.sh, fresh) and PostgreSQL
#                (deploy/scripts/postgres.sh, fresh) of the script's own, on ports of
#                their own; every service of `BIN services` as its own `BIN serve`
#                process, and the gateway (as deploy/scripts/bench-orders.sh starts them)
# Once every server answers /readyz it waits --settle seconds (start-up work: topics,
# seeding, the first consumer-group joins), then reads each process's CPU (utime + stime
# of it and its descendants, reaped ones included, from /proc, as `eventmart load
# --cpu-pids` does) before and after --seconds, and its RSS (VmRSS, summed over its
# descendants: PostgreSQL's backends each count the shared buffers they touched) at the
# end. Prints a markdown table, also written to --out: per process, CPU seconds over the
# window, % of one core, RSS in MB. Ports: 18900-18999 for Eventmart, Kafka on
# BENCH_KAFKA_PORT (default 18792, +1 controller, +2 metrics), PostgreSQL on
# BENCH_PG_PORT (default 18795): not beside a running bench-orders.sh.
set -euo pipefail
EM_NAME=bench-idle
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds=60 settle=30 modes=embedded,distributed out= bin=
while (($#)); do
	case $1 in
	--seconds) seconds=$2; shift 2 ;;
	--settle) settle=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) [[ -z $bin ]] || die "name one eventmart binary"; bin=$(realpath -m "$1"); shift ;;
	esac
done
[[ -n $bin ]] || die "name the eventmart binary (make build gives bin/eventmart)"
[[ -x $bin ]] || die "$bin is not an executable"
[[ $seconds =~ ^[1-9][0-9]*$ && $settle =~ ^[0-9]+$ ]] || die "--seconds and --settle take whole seconds"
IFS=, read -r -a modes <<<"$modes"
for m in "${modes[@]}"; do [[ $m == embedded || $m == distributed ]] || die "unknown mode $m (embedded, distributed)"; done

# shellcheck source=bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
names=()

# tree PID: PID and its descendants, one a line. (cat, not awk, opens the files:
# a process that ends meanwhile stops mawk.)
tree() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{pid = $1; sub(/^.*\) /, ""); parent[pid] = $2}
		END {want[root] = 1; print root
			do {more = 0; for (p in parent) if (!(p in want) && (parent[p] in want)) {want[p] = 1; print p; more = 1}} while (more)}'
}

# ticks PID: the CPU clock ticks (utime+stime+cutime+cstime) of PID and its descendants.
ticks() {
	local p total=0 f
	for p in $(tree "$1"); do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		f=${f##*) }
		read -r -a f <<<"$f"
		total=$((total + f[11] + f[12] + f[13] + f[14]))
	done
	echo "$total"
}

# rss_mb PID: VmRSS of PID and its descendants, in MB.
rss_mb() {
	local p kb=0 v
	for p in $(tree "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		kb=$((kb + ${v:-0}))
	done
	awk -v kb="$kb" 'BEGIN {printf "%.0f", kb / 1024}'
}

rows=()
# measure MODE: settle, then CPU over the window and RSS of every process in
# names/pids (parallel arrays), appended to rows.
measure() {
	local mode=$1 i hz before=() after=() total=0
	hz=$(getconf CLK_TCK)
	log "$mode: settling ${settle}s, then measuring ${seconds}s"
	sleep "$settle"
	for i in "${!pids[@]}"; do before[i]=$(ticks "${pids[i]}"); done
	sleep "$seconds"
	for i in "${!pids[@]}"; do after[i]=$(ticks "${pids[i]}"); done
	for i in "${!pids[@]}"; do
		local d=$((after[i] - before[i]))
		total=$((total + d))
		rows+=("| $mode | ${names[i]} | $(awk -v t="$d" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') | $(awk -v t="$d" -v hz="$hz" -v s="$seconds" 'BEGIN {printf "%.2f", 100 * t / hz / s}') | $(rss_mb "${pids[i]}") |")
	done
	rows+=("| $mode | **all** | **$(awk -v t="$total" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')** | **$(awk -v t="$total" -v hz="$hz" -v s="$seconds" 'BEGIN {printf "%.2f", 100 * t / hz / s}')** | |")
}

run_embedded() {
	local port dir=$work/embedded
	mkdir -p "$dir"
	port=$(free_port)
	"$bin" run --data "$dir/data" --addr "127.0.0.1:$port" >"$dir/run.log" 2>&1 &
	servers+=($!)
	wait_ready "http://127.0.0.1:$port" "$!" "$dir/run.log"
	pids=("${servers[@]}") names=("eventmart run")
	measure embedded
	stop_servers
}

run_distributed() {
	local dir=$work/distributed
	mkdir -p "$dir"
	start_distributed "$bin" "$dir" postgres
	pids=("${servers[@]}" "$(kafka_pid)" "$(pg_pid)")
	names=("${services[@]}" gateway kafka postgres)
	measure distributed
	stop_servers
	unset EVENTMART_BUS EVENTMART_DB EVENTMART_SERVICE_URLS
}

for m in "${modes[@]}"; do "run_$m"; done

{
	echo "idle ${seconds}s after ${settle}s to settle; $(date -u +%FT%TZ); $("$bin" version 2>/dev/null | head -n 1 || echo '?'); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| mode | process | CPU s | % of a core | RSS MB |"
	echo "|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
} | tee "${out:-/dev/null}"
