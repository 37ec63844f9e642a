#!/usr/bin/env bash
# Measures the per-node figures SCALING.md projects from, on this machine, with real
# servers on loopback: one `rung serve` (the single-node baseline), then the cluster
# shape with one collector and with two, alternating one B two B so drift hits both
# alike. Each run is `rung bench` in closed loop (50-signal batches, 64 connections),
# which watches the CPU of every process, then verifies in ClickHouse that every
# accepted signal landed.
#
#   bench/cluster.sh [rounds] [seconds] [partitions]
#   NATS_NODES=3 bench/cluster.sh ...   # a routed three-node NATS, the stream with 3 replicas
#
# Needs nats-server (Debian's package), ClickHouse on 127.0.0.1:9000 (.ci/services) and
# a built rung (go build -o /tmp/rung ./cmd/rung). It starts a NATS server of its own
# and drops the ClickHouse databases it made.
set -euo pipefail
rounds=${1:-2}; secs=${2:-10}; parts=${3:-64}
RUNG=${RUNG:-/tmp/rung}
work=$(mktemp -d)
pids=()
dbs=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	for db in "${dbs[@]}"; do clickhouse-client -q "DROP DATABASE IF EXISTS $db" || true; done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { until curl -sf "$1/readyz" >/dev/null; do sleep 0.2; done; }
ch_pid=$(pgrep -f 'clickhouse-server --config=/etc/clickhouse-server/config.xml' | head -1)

nodes=${NATS_NODES:-1}
nats_urls="" nats_watch=""
ports=() routes=()
for ((i = 0; i < nodes; i++)); do ports+=("$(free_port)"); routes+=("$(free_port)"); done
for ((i = 0; i < nodes; i++)); do
	cluster_args=()
	if ((nodes > 1)); then
		peers=""
		for ((j = 0; j < nodes; j++)); do ((j == i)) || peers+="${peers:+,}nats://127.0.0.1:${routes[j]}"; done
		cluster_args=(--name "n$i" --cluster_name scale --cluster "nats://127.0.0.1:${routes[i]}" --routes "$peers")
	fi
	nats-server -js -sd "$work/nats$i" -a 127.0.0.1 -p "${ports[i]}" -l "$work/nats$i.log" "${cluster_args[@]}" & n=$!
	pids+=("$n")
	nats_urls+="${nats_urls:+,}nats://127.0.0.1:${ports[i]}"
	nats_watch+="nats$i=$n,"
done
for p in "${ports[@]}"; do
	until (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do sleep 0.1; done
done

# bench NAME TARGETS DSN WATCH: one closed-loop run, verified; prints its summary line.
bench() {
	local name=$1 targets=$2 dsn=$3 watch=$4 out="$work/$1.json"
	$RUNG bench --target "$targets" --batch 50 --connections 64 --duration "${secs}s" --quiet --json \
		--clickhouse "$dsn" --watch "$watch" --verify-wait 120s >"$out"
	python3 - "$name" "$out" <<'PY'
import json, sys
name, r = sys.argv[1], json.load(open(sys.argv[2]))
s, v = r["signals"], (r.get("verification") or {}).get("landed", {})
procs = "  ".join(f'{p["name"]} {p["cpu_mean_pct"]:.0f}%' for p in r["processes"])
print(f'{name:11s} accepted/s {s["accepted_per_s"]:9.0f}  p99 {r["latency"]["p99_ms"]:7.1f} ms  '
      f'landed {v.get("status", "?")} ({v.get("matched", 0)} of {v.get("accepted", 0)}, {v.get("duplicates", 0)} twice)  cpu: {procs}')
PY
}

# single: one `rung serve`, the buffer in memory.
single() {
	local port db; port=$(free_port); db="rung_scale_single_$$_$1"; dbs+=("$db")
	$RUNG serve --listen 127.0.0.1:"$port" --log-level warn --relay=false --clickhouse "clickhouse://127.0.0.1:9000/$db" & local p=$!
	pids+=("$p"); wait_ready "http://127.0.0.1:$port"
	bench "single" "http://127.0.0.1:$port" "clickhouse://127.0.0.1:9000/$db" "serve=$p,clickhouse=$ch_pid"
	kill "$p"; wait "$p" || true
}

# cluster N: N collectors publishing to a stream of its own, one aggregator.
cluster() {
	local n=$1 stream="SCALE$$_$2_$1" db="rung_scale_cluster_$$_$2_$1" targets="" watch="" cs=()
	dbs+=("$db")
	local common=(--nats "$nats_urls" --stream-replicas "$nodes" --stream "$stream" --stream-subject "scale.$2.$1" --stream-partitions "$parts" --clickhouse "clickhouse://127.0.0.1:9000/$db" --log-level warn)
	local aport; aport=$(free_port)
	$RUNG aggregate --listen 127.0.0.1:"$aport" "${common[@]}" & local agg=$!
	pids+=("$agg"); wait_ready "http://127.0.0.1:$aport"
	for ((i = 0; i < n; i++)); do
		local port; port=$(free_port)
		$RUNG serve --listen 127.0.0.1:"$port" --relay=false "${common[@]}" & local c=$!
		pids+=("$c"); cs+=("$c"); wait_ready "http://127.0.0.1:$port"
		targets+="${targets:+,}http://127.0.0.1:$port"; watch+="collector$i=$c,"
	done
	bench "cluster x$n" "$targets" "clickhouse://127.0.0.1:9000/$db" "${watch}aggregator=$agg,${nats_watch}clickhouse=$ch_pid"
	kill "${cs[@]}" "$agg"; wait "${cs[@]}" "$agg" || true
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
	single "$r"
	cluster 1 "$r"
	cluster 2 "$r"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
