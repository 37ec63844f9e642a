#!/usr/bin/env bash
# Measures what --durability disk costs against memory on POST /collect: throughput and
# p99, single signals and 50-signal batches, the two modes alternating in one run
# (memory disk memory disk ...) so drift hits both alike. Prints one line per run.
#
#   bench/wrk/durability.sh [rounds] [seconds] [flags for rung serve...]
#
# Each run gets a fresh `rung serve` and --data-dir, and the end-to-end pipeline (buffer,
# sessionizer, SQLite unless the flags say otherwise) runs as in production. signals/s
# is what rung accepted, read from rung_signals_accepted_total. The p99 is wrk's:
# closed loop at saturation (64 connections), so it is the latency of a full server,
# not of a server at a given rate (rung bench measures that, open loop). Needs wrk and a
# built rung (go build -o /tmp/rung ./cmd/rung).
#
# COLLECTOR_ONLY=1 puts the flush off past the run (as compare.sh does), so the sink shares no core with /collect: what is left is the
# log's own cost, which end to end the sink's pace can hide.
#
# SIGNAL_RATE=N drives each run with `rung bench` in open loop at N signals/s instead
# of wrk at saturation: its p99 is the latency a client sees at that rate, queueing
# included (no coordinated omission), the figure a 202's fsync adds to.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}; secs=${2:-10}; shift 2 || true
flags=("$@")
RUNG=${RUNG:-/tmp/rung}

metric() { curl -s 127.0.0.1:18080/metrics | awk -v m="$1" '$1 == m {print $2}'; }

run() { # mode signals-per-request
	local dir out before after
	dir=$(mktemp -d)
	$RUNG serve --listen 127.0.0.1:18080 --log-level warn --relay=false --data-dir "$dir" --durability "$1" "${flags[@]}" & rung=$!
	until curl -sf 127.0.0.1:18080/readyz >/dev/null; do sleep 0.2; done
	if [ -n "${SIGNAL_RATE:-}" ]; then
		out=$($RUNG bench --target http://127.0.0.1:18080 --signal-rate "$SIGNAL_RATE" --batch "$2" \
			--duration "${secs}s" --finish 1s --verify=false --json --quiet)
		printf '%-6s %2d per request  open loop at %s signals/s  accepted/s %8.0f  p99 %8.2fms  p99.9 %8.2fms  (load %s)\n' \
			"$1" "$2" "$SIGNAL_RATE" "$(echo "$out" | awk -F'[:,]' '/"accepted_per_s"/ {print $2; exit}')" \
			"$(echo "$out" | awk -F'[:,]' '/"p99_ms"/ {print $2; exit}')" \
			"$(echo "$out" | awk -F'[:,]' '/"p99_9_ms"/ {print $2; exit}')" "$(cut -d' ' -f1 /proc/loadavg)"
		kill -9 "$rung"; wait "$rung" 2>/dev/null || true
		rm -rf "$dir"
		return
	fi
	before=$(metric rung_signals_accepted_total)
	out=$(wrk --latency -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:18080/collect -- "$2")
	after=$(metric rung_signals_accepted_total)
	printf '%-6s %2d per request  requests/s %7d  signals/s %8d  p99 %9s  (non-2xx: %s; load %s)\n' "$1" "$2" \
		"$(echo "$out" | awk '/requests in/ {print int($1/'"$secs"')}')" $(((after - before) / secs)) \
		"$(echo "$out" | awk '$1 == "99%" {print $2}')" \
		"$(echo "$out" | awk '/non-202 answers/ {print $3}')" "$(cut -d' ' -f1 /proc/loadavg)"
	kill -9 "$rung" # what it still holds is not part of the figure; draining it only costs time
	wait "$rung" 2>/dev/null || true
	rm -rf "$dir"
}

if [ "${COLLECTOR_ONLY:-}" = 1 ]; then
	flags+=(--flush-interval 60s --batch-size 20000000 --buffer-bytes 8589934592 --wal-bytes 8589934592)
fi
trap 'kill $rung 2>/dev/null; wait 2>/dev/null' EXIT
for ((i = 0; i < rounds; i++)); do
	for n in 1 50; do
		run memory "$n"
		run disk "$n"
	done
done
