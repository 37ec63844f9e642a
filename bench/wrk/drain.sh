#!/usr/bin/env bash
# Measures how fast rung drains a backlog into ClickHouse with nothing else running,
# against clickhouse-client inserting the same rows into the same table (Native, one
# INSERT) in the same run. A burst of 50-signal requests fills a big buffer faster than
# it drains; when the burst ends, the rows written from then until the buffer is empty,
# over that time, are the drain rate. The rows rung wrote are then read back as Native
# and inserted by clickhouse-client into an empty copy of the table.
#
#   bench/wrk/drain.sh [rounds] [burst seconds] [flags for rung serve...]
#
# Needs wrk, clickhouse-client and a built rung (go build -o /tmp/rung ./cmd/rung; RUNG
# names another binary). CLICKHOUSE names the server (default 127.0.0.1:9000); the
# database rung_drain is dropped and made again. PROFILE=file saves a 5 s CPU profile of
# rung from the start of each round's drain as file.<round>.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-10}; shift 2 || true
flags=("$@")
RUNG=${RUNG:-/tmp/rung}
ch=${CLICKHOUSE:-127.0.0.1:9000}
db=rung_drain
port=18081
native=$(mktemp); data=$(mktemp -d)
chc() { clickhouse-client --host "${ch%:*}" --port "${ch#*:}" "$@"; }
metric() { curl -s 127.0.0.1:$port/metrics | awk -v m="$1" '$1 == m {print $2}'; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%d", n / (b - a) }'; }

echo "$(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); rung flags: ${flags[*]:-(defaults)}"
for ((i = 1; i <= rounds; i++)); do
	chc -q "DROP DATABASE IF EXISTS $db"
	$RUNG serve --listen 127.0.0.1:$port --log-level warn --data-dir "$data" --relay=false \
		--clickhouse "clickhouse://$ch/$db" --buffer-bytes 4294967296 "${flags[@]}" & rung=$!
	trap 'kill $rung 2>/dev/null; rm -rf "$native" "$data"; true' EXIT
	until curl -sf 127.0.0.1:$port/readyz >/dev/null; do sleep 0.2; done
	wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:$port/collect -- 50 >/dev/null
	la=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(now); w0=$(metric 'rung_sink_rows_written_total{table="signals"}'); held=$(metric rung_buffer_signals)
	prof=
	[ -z "${PROFILE:-}" ] || { curl -s -o "$PROFILE.$i" "127.0.0.1:$port/debug/pprof/profile?seconds=5" & prof=$!; }
	while [ "$(metric rung_buffer_signals)" != 0 ]; do sleep 0.1; done
	[ -z "$prof" ] || wait $prof
	t1=$(now); w1=$(metric 'rung_sink_rows_written_total{table="signals"}')
	flushes=$(metric rung_buffer_flushes_total)
	kill $rung; wait $rung || true
	rows=$(chc -q "SELECT count() FROM $db.signals")
	chc -q "SELECT * FROM $db.signals FORMAT Native" >"$native"
	chc -q "CREATE TABLE $db.signals_copy AS $db.signals"
	c0=$(now); chc -q "INSERT INTO $db.signals_copy FORMAT Native" <"$native"; c1=$(now)
	ours=$(rate $((w1 - w0)) "$t0" "$t1"); theirs=$(rate "$rows" "$c0" "$c1")
	printf 'round %d  load %-16s  rung drained %8d rows (held %d) in %5.1f s: %7d rows/s (%d flushes)  clickhouse-client %7d rows/s  ratio %s\n' \
		"$i" "$la" $((w1 - w0)) "$held" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$ours" "$flushes" "$theirs" \
		"$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')"
done
chc -q "DROP DATABASE IF EXISTS $db"
