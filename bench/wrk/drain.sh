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
# SINK=sqlite measures the embedded default instead: rung drains into SQLite
# (telemetry.db), and the baseline is sqlite3 copying the same rows, in one transaction,
# into an empty copy of the table with the same indexes (INSERT ... SELECT: no parsing,
# no round trips; what SQLite itself takes to store them).
#
# Needs wrk, clickhouse-client and a built rung (go build -o /tmp/rung ./cmd/rung; RUNG
# names another binary). CLICKHOUSE names the server (default 127.0.0.1:9000), PORT
# rung's port (default 18293); the database rung_drain is dropped and made again.
# Each round also prints the CPU time rung, and the local ClickHouse server when
# pidof finds it, spent per drained row (utime + stime from /proc, in clock ticks):
# unlike the rate, it does not move with what else the shared cores run.
# PROFILE=file saves a 5 s CPU profile of rung from the start of each round's drain as
# file.<round>.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-10}; shift 2 || true
sink=${SINK:-clickhouse}
flags=("$@")
RUNG=${RUNG:-/tmp/rung}
ch=${CLICKHOUSE:-127.0.0.1:9000}
db=rung_drain
port=${PORT:-18293}
native=$(mktemp); data=$(mktemp -d)
chc() { clickhouse-client --host "${ch%:*}" --port "${ch#*:}" "$@"; }
metric() { curl -s 127.0.0.1:$port/metrics | awk -v m="$1" '$1 == m {print $2}'; }
now() { date +%s.%N; }
ticks() { [ -n "$1" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" || echo 0; }
perrow() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%d", n / (b - a) }'; }

echo "$(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); sink $sink; rung flags: ${flags[*]:-(defaults)}"
for ((i = 1; i <= rounds; i++)); do
	rm -rf "$data"; mkdir -p "$data"
	store=(--clickhouse "clickhouse://$ch/$db")
	if [ "$sink" = sqlite ]; then store=(); else chc -q "DROP DATABASE IF EXISTS $db"; fi
	$RUNG serve --listen 127.0.0.1:$port --log-level warn --data-dir "$data" --relay=false \
		"${store[@]}" --buffer-bytes 4294967296 "${flags[@]}" & rung=$!
	trap 'kill $rung 2>/dev/null; rm -rf "$native" "$data"; true' EXIT
	until curl -sf 127.0.0.1:$port/readyz >/dev/null; do sleep 0.2; done
	wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:$port/collect -- 50 >/dev/null
	la=$(cut -d' ' -f1-3 /proc/loadavg)
	server=$(pidof clickhouse-server || true); server=${server%% *}
	u0=$(ticks $rung); s0=$(ticks "$server")
	t0=$(now); w0=$(metric 'rung_sink_rows_written_total{table="signals"}'); held=$(metric rung_buffer_signals)
	prof=
	[ -z "${PROFILE:-}" ] || { curl -s -o "$PROFILE.$i" "127.0.0.1:$port/debug/pprof/profile?seconds=5" & prof=$!; }
	while [ "$(metric rung_buffer_signals)" != 0 ]; do sleep 0.1; done
	[ -z "$prof" ] || wait $prof
	t1=$(now); w1=$(metric 'rung_sink_rows_written_total{table="signals"}')
	u1=$(ticks $rung); s1=$(ticks "$server")
	flushes=$(metric rung_buffer_flushes_total)
	kill $rung; wait $rung || true
	if [ "$sink" = sqlite ]; then
		lite=(sqlite3 "$data/telemetry.db")
		rows=$("${lite[@]}" "SELECT count(*) FROM signals"); b0=0; b1=0
		"${lite[@]}" ".schema signals" | sed 's/signals/signals_copy/g' | "${lite[@]}"
		c0=$(now); "${lite[@]}" "BEGIN; INSERT INTO signals_copy SELECT * FROM signals; COMMIT;"; c1=$(now)
	else
		rows=$(chc -q "SELECT count() FROM $db.signals")
		chc -q "SELECT * FROM $db.signals FORMAT Native" >"$native"
		chc -q "CREATE TABLE $db.signals_copy AS $db.signals"
		b0=$(ticks "$server"); c0=$(now); chc -q "INSERT INTO $db.signals_copy FORMAT Native" <"$native"; c1=$(now); b1=$(ticks "$server")
	fi
	base=clickhouse-client; [ "$sink" = sqlite ] && base="sqlite3 copy"
	ours=$(rate $((w1 - w0)) "$t0" "$t1"); theirs=$(rate "$rows" "$c0" "$c1")
	printf 'round %d  load %-16s  rung drained %8d rows (held %d) in %5.1f s: %7d rows/s (%d flushes)  %s %7d rows/s  ratio %s  CPU µs/row: rung %s, server %s (for %s: %s)\n' \
		"$i" "$la" $((w1 - w0)) "$held" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$ours" "$flushes" "$base" "$theirs" \
		"$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')" \
		"$(perrow $((u1 - u0)) $((w1 - w0)))" "$(perrow $((s1 - s0)) $((w1 - w0)))" "$base" "$(perrow $((b1 - b0)) "$rows")"
done
[ "$sink" = sqlite ] || chc -q "DROP DATABASE IF EXISTS $db"
