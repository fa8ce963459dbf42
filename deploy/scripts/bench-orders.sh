#!/usr/bin/env bash
# The standard order benchmark (issue 19): throughput, latency and the cost of an
# order — CPU milliseconds per order of every process, Kafka records and PostgreSQL
# commits per order — embedded and distributed, at 1, 64 and 256 orders in flight,
# for one or more builds measured in one sitting (runs interleaved, so the machine's
# noise falls on all of them alike):
#
#   deploy/scripts/bench-orders.sh [--runs 3] [--orders 2000] [--orders-at-1 200] [--warmup 1000]
#       [--modes embedded,distributed] [--concurrency 1,64,256] [--rates embedded=200,distributed=100]
#       [--rate-seconds 20] [--customers 20] [--load LOADBIN]
#       [--out FILE] [--results DIR] BIN [BIN...]
#
# Each run drives a fresh Eventmart with `LOADBIN load --rate 0 --json` (LOADBIN: the
# last BIN unless given, so older builds are driven by the same load generator),
# which reads the CPU of every Eventmart process from its /metrics, of Kafka and
# PostgreSQL from /proc, from the first order until all are quiet after the last
# (seeding excluded), and counts records and commits over the same span.
#   embedded     `BIN run` on a fresh data directory (records: the events its outbox
#                relays published, from /metrics; no commits: SQLite)
#   distributed  one Kafka broker (deploy/scripts/kafka.sh: started once, wiped, for the
#                whole sitting; every topic deleted before each run, bench-common.sh) and
#                PostgreSQL (deploy/scripts/postgres.sh, fresh databases each run) of
#                the script's own, on ports of their own; every service BIN lists
#                (`BIN services`: an older build starts only those it knows) as its
#                own `BIN serve` process, and the gateway
# Before the measured load each run places --warmup orders (64 in flight, not measured; 0:
# none) on the same servers and waits until they are quiet: a broker just started spends
# its first minute or two compiling itself (the JVM's JIT), which is no cost of an order
# on a broker that runs for weeks, and every process fills its caches and pools.
# --rates adds an open-loop run per mode (in flight "rN": N orders a second started for
# --rate-seconds whatever the answers, at most 1024 in flight; none for a mode not named,
# "" for none): the issue's targets are p99 at 200/s embedded and 100/s distributed.
# --orders-at-1 is the orders of the runs with 1 in flight (they are slow); --customers
# the customers placing them (registered and logged in before the measurement: fewer
# than load's 50 keeps seeding within its timeouts on a busy machine).
# Prints every run (its failed and unexpected orders, "bad", the peak RSS of its largest
# Eventmart process, and the load average when it ended), then a markdown table of the
# medians per mode, concurrency and build ("n/a" where a build cannot report a
# figure), also written to --out; with two
# builds, the ratios bin 1 / bin 0. --results keeps each run's `load --json` there.
# Needs jq. Ports: 18900-18999 for Eventmart, Kafka on BENCH_KAFKA_PORT (default
# 18792, +1 controller, +2 metrics), PostgreSQL on BENCH_PG_PORT (default 18795).
set -euo pipefail
EM_NAME=bench-orders
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

runs=3 orders=2000 orders1=200 warmup=1000 rates=embedded=200,distributed=100 rate_secs=20 modes=embedded,distributed concs=1,64,256 customers=20 loadbin= out= results=
bins=()
while (($#)); do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--orders) orders=$2; shift 2 ;;
	--orders-at-1) orders1=$2; shift 2 ;;
	--warmup) warmup=$2; shift 2 ;;
	--rates) rates=$2; shift 2 ;;
	--rate-seconds) rate_secs=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--concurrency) concs=$2; shift 2 ;;
	--customers) customers=$2; shift 2 ;;
	--load) loadbin=$(realpath -m "$2"); shift 2 ;;
	--out) out=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) bins+=("$(realpath -m "$1")"); shift ;;
	esac
done
((${#bins[@]})) || die "name at least one eventmart binary (make build gives bin/eventmart)"
[[ -n $loadbin ]] || loadbin=${bins[-1]}
for b in "${bins[@]}" "$loadbin"; do [[ -x $b ]] || die "$b is not an executable"; done
IFS=, read -r -a modes <<<"$modes"
IFS=, read -r -a concs <<<"$concs"
for m in "${modes[@]}"; do [[ $m == embedded || $m == distributed ]] || die "unknown mode $m (embedded, distributed)"; done
for c in "${concs[@]}"; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "--concurrency: $c is not a positive number"; done
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup: $warmup is not a number of orders"
[[ $rate_secs =~ ^[1-9][0-9]*$ ]] || die "--rate-seconds: $rate_secs is not a positive number"
declare -A rate_of=()
IFS=, read -r -a rate_list <<<"$rates"
for x in "${rate_list[@]}"; do
	[[ $x =~ ^(embedded|distributed)=([1-9][0-9]*)$ ]] || die "--rates: $x is not MODE=ORDERS_PER_SECOND"
	rate_of[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done

# points M: what mode M is measured at: each concurrency, then "rN" for its open-loop rate.
points() {
	printf '%s\n' "${concs[@]}"
	[[ -z ${rate_of[$1]:-} ]] || echo "r${rate_of[$1]}"
}
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"

# shellcheck source=bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

# load DIR TARGET N C [LOAD FLAGS...]: the warm-up, then the load run, its JSON in
# DIR/result.json.
load() {
	local dir=$1 target=$2 n=$3 c=$4 how
	shift 4
	how=(--rate 0 --concurrency "$c")
	[[ $c != r* ]] || how=(--rate "${c#r}" --concurrency 1024)
	if ((warmup > 0)); then
		"$loadbin" load --target "$target" --orders "$warmup" --rate 0 --concurrency 64 --customers "$customers" --json \
			>"$dir/warmup.json" 2>"$dir/warmup.err" || { tail -5 "$dir/warmup.err" >&2; log "warm-up failed (kept: $dir/warmup.json)"; }
	fi
	"$loadbin" load --target "$target" --orders "$n" "${how[@]}" --customers "$customers" --json "$@" \
		>"$dir/result.json" 2>"$dir/load.err" || { tail -5 "$dir/load.err" >&2; log "load failed (kept: $dir/result.json)"; }
}

# peak_rss FILE: the peak resident memory (VmHWM) of the run's largest Eventmart
# process — `eventmart run` embedded, the largest service process distributed — over its
# life (warm-up and load), in MB, into FILE's JSON as .peakRssMB.
peak_rss() {
	local p kb max=0
	for p in "${servers[@]}"; do
		kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
		((${kb:-0} <= max)) || max=$kb
	done
	((max > 0)) || return 0
	jq --argjson mb "$((max / 1024))" '.peakRssMB = $mb' "$1" >"$1.tmp" 2>/dev/null && mv "$1.tmp" "$1" || rm -f "$1.tmp"
}

run_embedded() { # BIN DIR N C
	local bin=$1 dir=$2 port
	port=$(free_port)
	"$bin" run --data "$dir/data" --addr "127.0.0.1:$port" >"$dir/run.log" 2>&1 &
	servers+=($!)
	wait_ready "http://127.0.0.1:$port" "$!" "$dir/run.log"
	load "$dir" "http://127.0.0.1:$port" "$3" "$4"
	peak_rss "$dir/result.json"
	stop_servers
}

run_distributed() { # BIN DIR N C TAG
	start_distributed "$1" "$2" "$5"
	load "$2" "http://127.0.0.1:$base" "$3" "$4" --cpu-pids "kafka=$(kafka_pid),postgres=$(pg_pid)"
	peak_rss "$2/result.json"
	stop_servers
	unset EVENTMART_BUS EVENTMART_DB EVENTMART_SERVICE_URLS
}

# fig FILE JQ: a figure of a result, "n/a" when it has none.
fig() { jq -r "($2) // \"n/a\" | if type == \"number\" then (. * 100 | round / 100) else . end" "$1" 2>/dev/null || echo n/a; }

printf '%-12s %4s %-3s %3s %9s %9s %9s %10s %9s %9s %7s %5s  %s\n' mode c bin run 'orders/s' 'p50 ms' 'p99 ms' 'cpu ms/o' 'rec/o' 'commit/o' 'rss MB' 'bad' 'load avg'
for ((r = 1; r <= runs; r++)); do
	for m in "${modes[@]}"; do
		for c in $(points "$m"); do
			n=$orders
			[[ $c != 1 ]] || n=$orders1
			[[ $c != r* ]] || n=$((${c#r} * rate_secs))
			for i in "${!bins[@]}"; do
				dir=$work/res/$m-$c-$i-$r
				mkdir -p "$dir"
				"run_$m" "${bins[i]}" "$dir" "$n" "$c" "b${i}_r${r}_c${c}"
				mkdir -p "$work/keep"
				cp "$dir/result.json" "$work/keep/$m-$c-$i-$r.json" 2>/dev/null || echo '{}' >"$work/keep/$m-$c-$i-$r.json"
				f=$work/keep/$m-$c-$i-$r.json
				printf '%-12s %4s %-3s %3s %9s %9s %9s %10s %9s %9s %7s %5s  %s\n' "$m" "$c" "$i" "$r" "$(fig "$f" .ordersPerSecond)" \
					"$(fig "$f" .latencyMs.p50)" "$(fig "$f" .latencyMs.p99)" "$(fig "$f" .cpuMsPerOrder)" \
					"$(fig "$f" .recordsPerOrder)" "$(fig "$f" .commitsPerOrder)" "$(fig "$f" .peakRssMB)" "$(fig "$f" '.failed + .unexpected')" \
					"$(cut -d' ' -f1-3 /proc/loadavg)"
				[[ -z $results ]] || { mkdir -p "$results" && cp "$f" "$results/"; }
			done
		done
	done
done

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else printf "%.2f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# med M C I JQ: the median of a figure over the runs that have it.
med() {
	local r f
	for ((r = 1; r <= runs; r++)); do
		f=$work/keep/$1-$2-$3-$r.json
		jq -r "($4) // empty" "$f" 2>/dev/null || true
	done | median
}

# procs M C I: the median CPU ms/order of each process, busiest first.
procs() {
	local r
	for ((r = 1; r <= runs; r++)); do
		jq -r '.processes[]? | "\(.name)\t\(.cpuMsPerOrder)", (select(.jitCpuMsPerOrder) | "\(.name) JIT (included)\t\(.jitCpuMsPerOrder)")' "$work/keep/$1-$2-$3-$r.json" 2>/dev/null || true
	done | awk -F'\t' '{v[$1] = v[$1] " " $2} END {for (k in v) print k "\t" v[k]}' |
		while IFS=$'\t' read -r name vals; do
			printf '%s\t%s\n' "$(tr ' ' '\n' <<<"$vals" | grep . | median)" "$name"
		done | sort -gr | awk -F'\t' '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1} END {if (NR == 0) printf "n/a"}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2fx\n", a / b}'; }

table() {
	local i m c
	echo "medians of $runs runs; $orders orders ($orders1 at 1 in flight; at rN, N a second for $rate_secs s, open loop) after $warmup not measured, $customers customers; $(date -u +%FT%TZ); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	for i in "${!bins[@]}"; do
		echo "- bin $i: ${bins[i]} ($("${bins[i]}" version 2>/dev/null | head -n 1 || echo '?'))"
	done
	echo
	echo "| mode | in flight | bin | orders/s | p50 ms | p99 ms | CPU ms/order in all | per process | records/order | commits/order | peak RSS MB |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for m in "${modes[@]}"; do
		for c in $(points "$m"); do
			for i in "${!bins[@]}"; do
				echo "| $m | $c | $i | $(med "$m" "$c" "$i" .ordersPerSecond) | $(med "$m" "$c" "$i" .latencyMs.p50) | $(med "$m" "$c" "$i" .latencyMs.p99) | $(med "$m" "$c" "$i" .cpuMsPerOrder) | $(procs "$m" "$c" "$i") | $(med "$m" "$c" "$i" .recordsPerOrder) | $(med "$m" "$c" "$i" .commitsPerOrder) | $(med "$m" "$c" "$i" .peakRssMB) |"
			done
		done
	done
	if ((${#bins[@]} == 2)); then
		echo
		echo "| mode | in flight | orders/s bin 1 / bin 0 | CPU ms/order in all bin 1 / bin 0 |"
		echo "|---|---|---|---|"
		for m in "${modes[@]}"; do
			for c in $(points "$m"); do
				echo "| $m | $c | $(ratio "$(med "$m" "$c" 1 .ordersPerSecond)" "$(med "$m" "$c" 0 .ordersPerSecond)") | $(ratio "$(med "$m" "$c" 1 .cpuMsPerOrder)" "$(med "$m" "$c" 0 .cpuMsPerOrder)") |"
			done
		done
	fi
	echo
	echo "Records: embedded, the events the outbox relays published (/metrics); distributed, written to Kafka (end offsets of every topic)."
	echo "Peak RSS: the largest Eventmart process's peak resident memory over its run (VmHWM: warm-up and load; embedded, \`eventmart run\` itself)."
}
echo
table | tee "${out:-/dev/null}"
