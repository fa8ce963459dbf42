#!/usr/bin/env bash
# CPU per order of the embedded default, end to end, for one or more builds
# measured in one sitting (runs interleaved, so the machine's noise falls
# on all of them alike):
#
#   deploy/scripts/bench-saga.sh [--runs 3] [--orders 2000] [--concurrency 64] [--load LOADBIN] BIN [BIN...]
#
# Each run starts `BIN run` on a fresh data directory and a free port,
# drives it with `LOADBIN load --rate 0 --cpu-pids <its pid>` (LOADBIN: the
# last BIN unless given, so older builds are driven by the same load
# generator; orders followed to
# their final status), and records throughput and the CPU the Eventmart
# process spent per order, from the first order until it was quiet after
# the last (seeding excluded), read from its /metrics (from /proc, by its pid,
# for a build without them). Needs jq. Prints every run, then the
# median of each build and, with two builds, the ratio of the second to the
# first. Figures in docs/benchmarks.md come from this script.
set -euo pipefail
EM_NAME=bench-saga
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

runs=3 orders=2000 concurrency=64 loadbin=
bins=()
while (($#)); do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--orders) orders=$2; shift 2 ;;
	--concurrency) concurrency=$2; shift 2 ;;
	--load) loadbin=$(realpath "$2"); shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) bins+=("$(realpath "$1")"); shift ;;
	esac
done
((${#bins[@]})) || die "name at least one eventmart binary (make build gives bin/eventmart)"
[[ -n $loadbin ]] || loadbin=${bins[-1]}
for b in "${bins[@]}" "$loadbin"; do [[ -x $b ]] || die "$b is not an executable"; done
command -v jq >/dev/null || die "jq is needed (apt-get install jq)"

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-saga.XXXXXX")
server=
cleanup() {
	[[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

export EVENTMART_ADMIN_EMAIL=bench-admin@example.com EVENTMART_ADMIN_PASSWORD=bench-admin-password
export EVENTMART_JWT_SECRET=bench-saga-secret-0123456789abcdef

free_port() {
	local p
	for ((p = 18900; p < 19000; p++)); do
		port_in_use "$p" || { echo "$p"; return; }
	done
	die "no free port in 18900-18999"
}

# one BIN INDEX RUN: prints "ordersPerSecond cpuMsPerOrder loadMsPerOrder".
one() {
	local bin=$1 dir=$work/$2-$3 port out
	port=$(free_port)
	mkdir -p "$dir"
	"$bin" run --data "$dir/data" --addr "127.0.0.1:$port" >"$dir/run.log" 2>&1 &
	server=$!
	for ((t = 0; t < 300; t++)); do
		curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
		pid_alive "$server" || { tail -20 "$dir/run.log" >&2; die "$bin run exited"; }
		sleep 0.1
	done
	out=$("$loadbin" load --target "http://127.0.0.1:$port" --orders "$orders" --rate 0 \
		--concurrency "$concurrency" --cpu-pids "$server" --json 2>"$dir/load.err") ||
		{ cat "$dir/load.err" >&2; die "load failed against $bin"; }
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=
	# The server's CPU (its /metrics, or its pid for a build without them)
	# and the load generator's.
	jq -r '[(.ordersPerSecond * 10 | round / 10),
		([.processes[] | select(.name != "load generator") | .cpuMsPerOrder] | add // empty | . * 100 | round / 100),
		([.processes[] | select(.name == "load generator") | .cpuMsPerOrder] | add // 0 | . * 100 | round / 100)] | join(" ")' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A tput cpu lcpu
printf '%-4s %-3s %-50s %12s %14s %14s\n' run bin binary 'orders/s' 'cpu ms/order' 'loadgen ms/o'
for ((r = 1; r <= runs; r++)); do
	for i in "${!bins[@]}"; do
		read -r t c l <<<"$(one "${bins[i]}" "$i" "$r")"
		[[ -n $c ]] || die "no cpu figure from run $r of ${bins[i]}"
		tput[$i]+="$t " cpu[$i]+="$c " lcpu[$i]+="$l "
		printf '%-4s %-3s %-50s %12s %14s %14s\n' "$r" "$i" "${bins[i]}" "$t" "$c" "$l"
	done
done
echo "medians of $runs runs, $orders orders, $concurrency in flight, $(date -u +%FT%TZ), $(nproc) cores:"
for i in "${!bins[@]}"; do
	mt=$(tr ' ' '\n' <<<"${tput[$i]}" | grep . | median)
	mc=$(tr ' ' '\n' <<<"${cpu[$i]}" | grep . | median)
	ml=$(tr ' ' '\n' <<<"${lcpu[$i]}" | grep . | median)
	printf '  bin %s %s (%s): %s orders/s, %s CPU ms/order (load generator %s)\n' "$i" "${bins[i]}" \
		"$("${bins[i]}" version 2>/dev/null | head -n 1 || echo '?')" "$mt" "$mc" "$ml"
	eval "med_t_$i=$mt med_c_$i=$mc"
done
if ((${#bins[@]} == 2)); then
	awk -v t0="$med_t_0" -v t1="$med_t_1" -v c0="$med_c_0" -v c1="$med_c_1" \
		'BEGIN {printf "  bin 1 / bin 0: throughput %.2fx, cpu per order %.2fx\n", t1/t0, c1/c0}'
fi
