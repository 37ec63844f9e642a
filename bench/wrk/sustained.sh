#!/usr/bin/env bash
# Measures the sustained end-to-end rate: signals sent for a while with wrk, then the
# rows that landed in the store, counted there, over the time from the start of the
# load until the last of them landed. rung (into ClickHouse and into SQLite) and the
# peers that are installed run in turn, alternating, with the bare fasthttp server
# (`rung baseline`) in the same run; the table at the end is the issue's (#15). Every
# target gets the same `wrk -t2 -c64`.
#
#   bench/wrk/sustained.sh [rounds] [seconds]
#
# Needs wrk, clickhouse-client, sqlite3 and a built rung (go build -o /tmp/rung
# ./cmd/rung; RUNG names another binary). Peers, each run only when set, built as
# ../shared/peers/README.md says: BULK=path of clickhouse-bulk, BENTO=path of
# bento-slim, with PEERS= the directory of their configurations and wrk scripts
# (default /work/shared/peers). rung runs with its defaults (--buffer-bytes 128 MiB,
# --when-full reject): refused requests are counted, and must be retried by a real
# client; landed must equal accepted (zero loss), which the script checks. rung and the
# bare server listen on PORTS (default 18290) to PORTS+2; the peers where their
# configurations say.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-15}
RUNG=${RUNG:-/tmp/rung}
PEERS=${PEERS:-/work/shared/peers}
ch=${CLICKHOUSE:-127.0.0.1:9000}
bare=$((${PORTS:-18290})) chp=$((${PORTS:-18290} + 1)) litep=$((${PORTS:-18290} + 2))
for p in $bare $chp $litep; do
	! curl -s -o /dev/null "127.0.0.1:$p/" || { echo "port $p is taken: set PORTS" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; true' EXIT

chc() { clickhouse-client --host "${ch%:*}" --port "${ch#*:}" "$@"; }
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
now() { date +%s.%N; }
up() { until curl -s -o /dev/null "$1"; do sleep 0.2; done; }

# --- targets ---------------------------------------------------------------------------
$RUNG baseline --listen 127.0.0.1:$bare >/dev/null & pids+=($!)
chc -q "DROP DATABASE IF EXISTS rung_sustained"
$RUNG serve --listen 127.0.0.1:$chp --log-level warn --relay=false --data-dir "$work/ch" \
	--clickhouse "clickhouse://$ch/rung_sustained" & pids+=($!); chpid=$!
$RUNG serve --listen 127.0.0.1:$litep --log-level warn --relay=false --data-dir "$work/sqlite" & pids+=($!); litepid=$!
up 127.0.0.1:$bare/; up 127.0.0.1:$chp/readyz; up 127.0.0.1:$litep/readyz
if [ -n "${BULK:-}" ]; then
	chc -q "DROP DATABASE IF EXISTS peer_bulk"
	chc -q "CREATE DATABASE peer_bulk"
	chc -q "CREATE TABLE peer_bulk.signals (site String, anonymous_id String, type String, url String,
		referrer String, utm_source String, event_id String, ts DateTime) ENGINE = MergeTree()
		PARTITION BY toYYYYMM(ts) ORDER BY (site, ts)"
	(cd "$work" && exec "$BULK" -config "$PEERS/clickhouse-bulk.json" >bulk.log 2>&1) & pids+=($!)
	up 127.0.0.1:18124/
fi
if [ -n "${BENTO:-}" ]; then
	chc -q "DROP DATABASE IF EXISTS peer_bento"
	chc -q "CREATE DATABASE peer_bento"
	chc -q "CREATE TABLE peer_bento.signals (site String, anonymous_id String, type String, url String,
		referrer String, utm_source String, event_id String, ts DateTime) ENGINE = MergeTree()
		PARTITION BY toYYYYMM(ts) ORDER BY (site, ts)"
	"$BENTO" run "$PEERS/bento.yaml" >"$work/bento.log" 2>&1 & pids+=($!)
	up 127.0.0.1:18125/ping
fi

# --- one run ---------------------------------------------------------------------------
# count_<kind> prints the rows in the target's store.
count_ch() { chc -q "SELECT count() FROM $1.signals"; }
count_sqlite() { sqlite3 -cmd ".timeout 10000" "$work/sqlite/telemetry.db" "SELECT count(*) FROM signals"; }

# land COUNT... waits until the store's count has not moved for 3 s (and rung's buffer,
# when PORT is set, is empty) and sets landed and last (when it last moved).
land() {
	local n prev=-1 still=0
	while :; do
		n=$("$@")
		if [ "$n" != "$prev" ]; then prev=$n; last=$(now); still=0
		elif [ -z "$port" ] || [ "$(metric "$port" rung_buffer_signals)" = 0 ]; then
			still=$((still + 1)); [ $still -ge 12 ] && break
		fi
		sleep 0.25
	done
	landed=$prev
}

rows=()
# run NAME PER URL SCRIPT PORT COUNT... : one wrk run against a target, PER signals a
# request; PORT is rung's (for its accepted count), empty for the others.
run() {
	local name=$1 per=$2 url=$3 script=$4; port=$5; shift 5
	local before acc0 t0 out reqs non2xx accepted=- rate
	before=$("$@")
	[ -z "$port" ] || acc0=$(metric "$port" rung_signals_accepted_total)
	t0=$(now)
	out=$(wrk -t2 -c64 -d"${secs}s" -s "$script" "$url" -- "$per")
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF} /non-202 answers/ {print $3}' | tail -1)
	land "$@"
	landed=$((landed - before))
	if [ -n "$port" ]; then
		accepted=$(($(metric "$port" rung_signals_accepted_total) - acc0))
		[ "$accepted" = "$landed" ] || echo "LOSS: $name accepted $accepted, landed $landed" >&2
	fi
	rate=$(awk -v n="$landed" -v a="$t0" -v b="$last" 'BEGIN { printf "%d", n / (b - a) }')
	printf '%-34s sent %9d  accepted %9s  landed %9d  in %5.1f s  landed/s %8d  non-2xx %s\n' "$name" \
		$((reqs * per)) "$accepted" "$landed" "$(awk -v a="$t0" -v b="$last" 'BEGIN {print b - a}')" "$rate" "${non2xx:-0}"
	rows+=("$name|$rate")
}
bare() {
	local out reqs
	out=$(wrk -t2 -c64 -d"${secs}s" -s collect.lua http://127.0.0.1:$bare/collect -- 1)
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	printf '%-34s requests/s %8d\n' "bare fasthttp 202" $((reqs / secs))
	rows+=("bare fasthttp 202 (req/s)|$((reqs / secs))")
}

echo "$(nproc) cores: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $rounds rounds of ${secs} s"
for ((i = 1; i <= rounds; i++)); do
	echo "round $i, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	bare
	run "rung → ClickHouse, 1/request" 1 http://127.0.0.1:$chp/collect collect.lua $chp count_ch rung_sustained
	[ -z "${BULK:-}" ] || run "clickhouse-bulk, 1 row/request" 1 http://127.0.0.1:18124/ "$PEERS/bulk.lua" "" count_ch peer_bulk
	[ -z "${BENTO:-}" ] || run "Bento → ClickHouse, 1/request" 1 http://127.0.0.1:18125/collect "$PEERS/bento.lua" "" count_ch peer_bento
	run "rung → ClickHouse, 50/request" 50 http://127.0.0.1:$chp/collect collect.lua $chp count_ch rung_sustained
	[ -z "${BULK:-}" ] || run "clickhouse-bulk, 50 rows/request" 50 http://127.0.0.1:18124/ "$PEERS/bulk50.lua" "" count_ch peer_bulk
	run "rung → SQLite, 1/request" 1 http://127.0.0.1:$litep/collect collect.lua $litep count_sqlite
	run "rung → SQLite, 50/request" 50 http://127.0.0.1:$litep/collect collect.lua $litep count_sqlite
done

# --- the table -------------------------------------------------------------------------
echo
printf '| target |'; for ((i = 1; i <= rounds; i++)); do printf ' round %d |' "$i"; done; echo
printf '|---|'; for ((i = 1; i <= rounds; i++)); do printf -- '---|'; done; echo
per=$((${#rows[@]} / rounds))
for ((r = 0; r < per; r++)); do
	printf '| %s |' "${rows[r]%%|*}"
	for ((i = 0; i < rounds; i++)); do
		printf ' %sk |' "$(awk -v n="${rows[i * per + r]#*|}" 'BEGIN { printf "%.1f", n / 1000 }')"
	done
	echo
done
# ratio A B: per round, the row named A over the row named B.
ratio() {
	local a b out=()
	for ((i = 0; i < rounds; i++)); do
		for ((r = 0; r < per; r++)); do
			[ "${rows[i * per + r]%%|*}" = "$1" ] && a=${rows[i * per + r]#*|}
			[ "${rows[i * per + r]%%|*}" = "$2" ] && b=${rows[i * per + r]#*|}
		done
		out+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f×", (b > 0 ? a / b : 0) }')")
	done
	echo "$1 ÷ $2: ${out[*]}"
}
echo
if [ -n "${BULK:-}" ]; then
	ratio "rung → ClickHouse, 1/request" "clickhouse-bulk, 1 row/request"
	ratio "rung → ClickHouse, 50/request" "clickhouse-bulk, 50 rows/request"
fi
ratio "rung → ClickHouse, 1/request" "bare fasthttp 202 (req/s)"
# The memory bound: the peak RSS of each rung process over the whole run.
peak() { awk '/^VmHWM/ {printf "%d MiB", $2 / 1024}' "/proc/$1/status"; }
echo "peak RSS (--buffer-bytes 128 MiB): rung → ClickHouse $(peak $chpid), rung → SQLite $(peak $litepid)"
chc -q "DROP DATABASE IF EXISTS rung_sustained"
