#!/usr/bin/env bash
# Measures rung's POST /collect against a bare fasthttp server answering 202 to the same
# requests (`rung baseline`), on this machine, alternating A B A B so drift hits both
# alike: per round, bare then rung with one signal per request, then bare then rung with
# 50. Prints one line per run, then per round the two ratios with the load average at
# the round's start; BENCHMARKS.md records them.
#
#   bench/wrk/compare.sh [rounds] [seconds] [flags for rung serve...]
#
# rung's figure is what it accepted, read from rung_signals_accepted_total before and
# after the run (a 202 may accept part of a batch; a 503 accepts nothing). Between runs
# the script waits until rung's buffer has drained, so the next run does not share the
# CPU with the previous one's flush. Needs wrk (Debian's package) and a built rung
# (go build -o /tmp/rung ./cmd/rung; RUNG names another binary).
#
# Three modes:
#
# STEADY=1 measures the collector in steady state: one `rung serve --sink discard`
# process for every round, whose buffer flushes through the sessionizer as in
# production into a sink that counts and forgets, so memory is reused and no store
# shares the cores. A warm-up run of each kind comes first, unrecorded, so the heap and
# the sessions are those of a running server. At the end the script checks that every
# accepted signal reached the sink (rung_sink_rows_discarded_total).
#
#   STEADY=1 bench/wrk/compare.sh 4 10
#
# COLLECTOR_ONLY=1 is the older growth mode: each rung run gets a fresh process whose
# flush is put off past the run (--flush-interval 60s, --batch-size 20000000, an 8 GiB
# buffer), and is SIGKILLed after it. Its heap grows by gigabytes in ten seconds, a
# state production never runs in, so its figure depends on how fast the machine faults
# in fresh pages. Nothing is written, so nothing is verified.
#
# The default is end to end into the store the flags name: the script checks at the end
# that every accepted signal was written.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-10}; shift 2 || true
flags=("$@")
RUNG=${RUNG:-/tmp/rung}
mode=end-to-end
[ "${COLLECTOR_ONLY:-}" = 1 ] && mode=collector-only
[ "${STEADY:-}" = 1 ] && mode=steady
[ "$mode" = steady ] || [ ${#flags[@]} -gt 0 ] || flags=(--data-dir "$(mktemp -d)")
case $mode in
steady) flags=(--sink discard --relay=false "${flags[@]}") ;;
collector-only) flags+=(--flush-interval 60s --batch-size 20000000 --buffer-bytes 8589934592) ;;
esac

metric() { curl -s 127.0.0.1:18080/metrics | awk -v m="$1" '$1 == m {print $2}'; }
drain() { while [ "$(metric rung_buffer_signals)" != "0" ]; do sleep 0.5; done; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

bare_rate=0 rung_rate=0
run_bare() { # signals-per-request
	local n; n=$(wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:18090/collect -- "$1" | awk '/requests in/ {print $1}')
	bare_rate=$((n / secs))
	printf 'bare  %2d per request  requests/s %8d  signals/s %9d\n' "$1" "$bare_rate" $((n * $1 / secs))
}
start_rung() {
	$RUNG serve --listen 127.0.0.1:18080 --log-level warn "${flags[@]}" & rung=$!
	until curl -sf 127.0.0.1:18080/readyz >/dev/null; do sleep 0.2; done
}
run_rung() { # signals-per-request
	local before after out
	if [ "$mode" = collector-only ]; then
		kill -9 "$rung" 2>/dev/null || true
		wait "$rung" 2>/dev/null || true
		start_rung
	fi
	before=$(metric rung_signals_accepted_total)
	out=$(wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:18080/collect -- "$1")
	after=$(metric rung_signals_accepted_total)
	rung_rate=$(((after - before) / secs))
	printf 'rung  %2d per request  requests/s %8d  signals/s %9d  (non-2xx answers: %s)\n' "$1" \
		"$(echo "$out" | awk '/requests in/ {print int($1/'"$secs"')}')" "$rung_rate" \
		"$(echo "$out" | awk '/non-202 answers/ {print $3}')"
	[ "$mode" = collector-only ] || drain
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

echo "mode $mode, $rounds rounds of ${secs} s, $(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
$RUNG baseline --listen 127.0.0.1:18090 >/dev/null & bare=$!
start_rung
trap 'kill $bare $rung 2>/dev/null; wait 2>/dev/null' EXIT
if [ "$mode" = steady ]; then
	echo "warm-up (not counted), load $(load)"
	for per in 1 50; do
		wrk -t2 -c64 -d3s -s collect.lua http://127.0.0.1:18080/collect -- "$per" >/dev/null
		drain
	done
fi
summary=()
for ((i = 1; i <= rounds; i++)); do
	la=$(load)
	echo "round $i, load average $la"
	run_bare 1
	run_rung 1
	single=$(ratio "$rung_rate" "$bare_rate")
	run_bare 50
	run_rung 50
	batch=$(ratio "$rung_rate" "$bare_rate")
	summary+=("$(printf 'round %d  load %-16s  single: rung ÷ bare %s×   50-batch: rung signals/s ÷ bare req/s %s×' "$i" "$la" "$single" "$batch")")
done
printf '%s\n' "${summary[@]}"
case $mode in
collector-only)
	kill -9 "$rung" # its buffer holds the last run, which is not to be written
	;;
steady)
	accepted=$(metric rung_signals_accepted_total)
	discarded=$(metric 'rung_sink_rows_discarded_total{table="signals"}')
	echo "accepted $accepted, reached the discard sink $discarded"
	[ "$accepted" = "$discarded" ] || { echo "MISMATCH: accepted signals did not all reach the sink" >&2; exit 1; }
	;;
*)
	curl -s 127.0.0.1:18080/metrics | grep -E '^rung_(signals_accepted_total|sink_rows_written_total|signals_dropped_total|signals_rejected_total\{reason="buffer_full"\}|requests_rejected_total\{reason="buffer_full"\})'
	;;
esac
