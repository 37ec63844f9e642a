#!/usr/bin/env bash
# Measures rung's POST /collect against a bare fasthttp server answering 202 to the same
# requests, on this machine, alternating A B A B so drift hits both alike. Prints one
# line per run; BENCHMARKS.md records the ratios.
#
#   bench/wrk/compare.sh [rounds] [seconds] [flags for rung serve...]
#
# rung's figure is what it accepted, read from rung_signals_accepted_total before and
# after the run (a 202 may accept part of a batch; a 503 accepts nothing). Between runs
# the script waits until rung's buffer has drained into the sink, so the next run does
# not share the CPU with the previous one's flush. Needs wrk (Debian's package) and a
# built rung (go build -o /tmp/rung ./cmd/rung).
#
# COLLECTOR_ONLY=1 measures /collect alone: each rung run gets a fresh process whose
# flush is put off past the run (--flush-interval 60s, --batch-size 20000000, an 8 GiB
# buffer), and is SIGKILLed after it, so neither the sink nor pre-aggregation shares the
# cores during the window (in production ClickHouse has machines of its own). Nothing is
# written, so nothing is verified: the end-to-end mode (the default) is the one that
# checks every accepted signal landed.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-10}; shift 2 || true
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--data-dir "$(mktemp -d)")
RUNG=${RUNG:-/tmp/rung}

metric() { curl -s 127.0.0.1:18080/metrics | awk -v m="$1" '$1 == m {print $2}'; }
drain() { while [ "$(metric rung_buffer_signals)" != "0" ]; do sleep 0.5; done; }

run_bare() { # signals-per-request
	local n; n=$(wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:18090/collect -- "$1" | awk '/requests in/ {print $1}')
	printf 'bare  %2d per request  requests/s %8d  signals/s %9d\n' "$1" $((n / secs)) $((n * $1 / secs))
}
start_rung() {
	$RUNG serve --listen 127.0.0.1:18080 --log-level warn "${flags[@]}" & rung=$!
	until curl -sf 127.0.0.1:18080/readyz >/dev/null; do sleep 0.2; done
}
run_rung() { # signals-per-request
	local before after out
	if [ "${COLLECTOR_ONLY:-}" = 1 ]; then
		kill -9 "$rung" 2>/dev/null || true
		wait "$rung" 2>/dev/null || true
		start_rung
	fi
	before=$(metric rung_signals_accepted_total)
	out=$(wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:18080/collect -- "$1")
	after=$(metric rung_signals_accepted_total)
	printf 'rung  %2d per request  requests/s %8d  signals/s %9d  (non-2xx answers: %s)\n' "$1" \
		"$(echo "$out" | awk '/requests in/ {print int($1/'"$secs"')}')" $(((after - before) / secs)) \
		"$(echo "$out" | awk '/non-202 answers/ {print $3}')"
	[ "${COLLECTOR_ONLY:-}" = 1 ] || drain
}

if [ "${COLLECTOR_ONLY:-}" = 1 ]; then
	flags+=(--flush-interval 60s --batch-size 20000000 --buffer-bytes 8589934592)
fi
$RUNG baseline --listen 127.0.0.1:18090 >/dev/null & bare=$!
start_rung
trap 'kill $bare $rung 2>/dev/null; wait 2>/dev/null' EXIT
for ((i = 0; i < rounds; i++)); do
	run_bare 1
	run_rung 1
	run_bare 50
	run_rung 50
done
if [ "${COLLECTOR_ONLY:-}" = 1 ]; then
	kill -9 "$rung" # its buffer holds the last run, which is not to be written
	exit 0
fi
curl -s 127.0.0.1:18080/metrics | grep -E '^rung_(signals_accepted_total|sink_rows_written_total|signals_dropped_total|signals_rejected_total\{reason="buffer_full"\})'
