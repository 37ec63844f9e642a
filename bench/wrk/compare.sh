#!/usr/bin/env bash
# Measures rung's POST /collect against a bare fasthttp server answering 202 to the same
# requests, on this machine, alternating A B A B so drift hits both alike. Prints one
# line per run; BENCHMARKS.md records the ratios.
#
#   bench/wrk/compare.sh [rounds] [seconds] [sink args for rung serve...]
#
# Needs wrk (Debian's package) and a built rung (go build -o /tmp/rung ./cmd/rung).
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-10}; shift 2 || true
sink=("$@")
[ ${#sink[@]} -gt 0 ] || sink=(--data-dir "$(mktemp -d)")
RUNG=${RUNG:-/tmp/rung}
# Only 202s count: a 503 from a full buffer is refusal, not throughput.
accepted_rate() { awk -v secs="$secs" '/requests in/ {n=$1} /non-202 answers/ {bad=$3} END {printf "%.0f", (n-bad)/secs}'; }
bad() { awk '/non-202 answers/ {print $3}'; }

run_one() { # name port script signals-per-request
	local out; out=$(wrk -t2 -c64 -d"${secs}s" -s "$3" "http://127.0.0.1:$2/collect")
	local r b; r=$(echo "$out" | accepted_rate); b=$(echo "$out" | bad)
	printf '%-6s %-8s 202/s %8d  signals/s %9d  non-202 answers %s\n' "$1" "$(basename "$3" .lua)" "$r" "$((r * $4))" "$b"
}

$RUNG baseline --listen 127.0.0.1:18090 >/dev/null & bare=$!
$RUNG serve --listen 127.0.0.1:18080 --log-level warn "${sink[@]}" & rung=$!
trap 'kill $bare $rung 2>/dev/null; wait 2>/dev/null' EXIT
sleep 1
for ((i = 0; i < rounds; i++)); do
	run_one bare 18090 single.lua 1
	run_one rung 18080 single.lua 1
	run_one bare 18090 batch50.lua 50
	run_one rung 18080 batch50.lua 50
done
curl -s 127.0.0.1:18080/metrics | grep -E '^rung_(signals_accepted_total|sink_rows_written_total|signals_dropped_total|signals_rejected_total\{reason="buffer_full"\})'
