#!/usr/bin/env bash
# Splits the CPU of a sustained load between the processes on the machine: for rung
# serve into ClickHouse, and for clickhouse-bulk when BULK names it, under the same
# `wrk -t2 -c64`, the rows written per second during the load and the CPU each process
# (the collector, the ClickHouse server, wrk) spent per row written (utime + stime from
# /proc, over the load less its first 3 s and last 3 s). On two shared cores the sum
# per row is what bounds the rate, and it moves much less with the machine's load than
# the rate does.
#
#   bench/wrk/split.sh [rounds] [seconds] [signals per request] [flags for rung serve...]
#
# Needs wrk, clickhouse-client, pidof and a built rung (go build -o /tmp/rung
# ./cmd/rung; RUNG names another binary). BULK=path of clickhouse-bulk and PEERS= the
# directory of its configuration and wrk scripts (default /work/shared/peers), built as
# ../shared/peers/README.md says. The databases rung_split and peer_bulk are dropped and
# made again. PROFILE=file saves a CPU profile of rung over the measured span of each
# round as file.<round>.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-20}; per=${3:-50}; shift 3 || true
flags=("$@")
RUNG=${RUNG:-/tmp/rung}
PEERS=${PEERS:-/work/shared/peers}
port=${PORT:-18411}
(( secs >= 10 )) || { echo "seconds: at least 10" >&2; exit 2; }
chc() { clickhouse-client "$@"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
data=$(mktemp -d); target=
trap '[ -z "$target" ] || { kill $target 2>/dev/null; wait $target 2>/dev/null; }; rm -rf "$data"; true' EXIT

# measure NAME PID URL SCRIPT COUNT...: wrk against URL, and the split of the CPU while
# COUNT (a command printing rows written so far) moves.
measure() {
	local name=$1 pid=$2 url=$3 script=$4; shift 4
	local srv w prof= u0 s0 k0 n0 t0 u1 s1 k1 n1 t1
	srv=$(pidof clickhouse-server); srv=${srv%% *}
	wrk -t2 -c64 -d"${secs}s" -s "$script" "$url" -- "$per" >/dev/null & w=$!
	sleep 3
	u0=$(ticks $pid); s0=$(ticks $srv); k0=$(ticks $w); n0=$("$@"); t0=$(date +%s.%N)
	if [ -n "${PROFILE:-}" ] && [ "$name" = rung ]; then
		curl -s -o "$PROFILE.$i" "127.0.0.1:$port/debug/pprof/profile?seconds=$((secs - 6))" & prof=$!
	fi
	sleep $((secs - 6))
	u1=$(ticks $pid); s1=$(ticks $srv); k1=$(ticks $w); n1=$("$@"); t1=$(date +%s.%N)
	wait $w
	[ -z "$prof" ] || wait $prof
	awk -v name="$name" -v n=$((n1 - n0)) -v a="$t0" -v b="$t1" -v r=$((u1 - u0)) -v s=$((s1 - s0)) -v k=$((k1 - k0)) \
		-v hz="$(getconf CLK_TCK)" 'BEGIN { d = b - a
		printf "%-16s written %7d rows/s  cores: it %.2f, server %.2f, wrk %.2f  µs/row: it %.2f, server %.2f, wrk %.2f, sum %.2f\n",
			name, n / d, r / hz / d, s / hz / d, k / hz / d, r / hz * 1e6 / n, s / hz * 1e6 / n, k / hz * 1e6 / n, (r + s + k) / hz * 1e6 / n }'
}
metric() { curl -s "127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
written() { metric 'rung_sink_rows_written_total{table="signals"}'; }
bulkrows() { chc -q "SELECT count() FROM peer_bulk.signals"; }

echo "$(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $per signals a request; rung flags: ${flags[*]:-(defaults)}"
for ((i = 1; i <= rounds; i++)); do
	echo "round $i, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	chc -q "DROP DATABASE IF EXISTS rung_split"
	rm -rf "$data"; mkdir -p "$data"
	$RUNG serve --listen 127.0.0.1:$port --log-level warn --relay=false --data-dir "$data" \
		--clickhouse "clickhouse://127.0.0.1:9000/rung_split" "${flags[@]}" & target=$!
	until curl -sf 127.0.0.1:$port/readyz >/dev/null; do sleep 0.2; done
	measure rung $target http://127.0.0.1:$port/collect collect.lua written
	kill $target; wait $target || true; target=
	[ -n "${BULK:-}" ] || continue
	chc -q "DROP DATABASE IF EXISTS peer_bulk"
	chc -q "CREATE DATABASE peer_bulk"
	chc -q "CREATE TABLE peer_bulk.signals (site String, anonymous_id String, type String, url String,
		referrer String, utm_source String, event_id String, ts DateTime) ENGINE = MergeTree()
		PARTITION BY toYYYYMM(ts) ORDER BY (site, ts)"
	(cd "$data" && exec "$BULK" -config "$PEERS/clickhouse-bulk.json" >bulk.log 2>&1) & target=$!
	until curl -s -o /dev/null 127.0.0.1:18124/; do sleep 0.2; done
	script=$PEERS/bulk50.lua; [ "$per" = 1 ] && script=$PEERS/bulk.lua
	measure clickhouse-bulk $target http://127.0.0.1:18124/ "$script" bulkrows
	kill $target; wait $target 2>/dev/null || true; target=
done
chc -q "DROP DATABASE IF EXISTS rung_split"
