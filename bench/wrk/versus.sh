#!/usr/bin/env bash
# Measures `rung bench` against wrk on one server already running, alternating wrk and
# rung bench (closed loop, 64 connections, one signal per request) so drift hits both
# alike. Prints, per run, the load average before it, requests/s, and the client's CPU
# (user + system, from /usr/bin/time) per request it made, the figure that decides how
# much of a shared machine the client takes from the server. BENCHMARKS.md records them.
#
#   bench/wrk/versus.sh [rounds] [seconds] [target]      (target: http://127.0.0.1:8090)
#
# Needs wrk (Debian's package), GNU time (/usr/bin/time) and a built rung
# (go build -o /tmp/rung ./cmd/rung); RUNG names another binary. Against rung serve,
# let the buffer drain between runs (DRAIN=a command that returns when it has).
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-2}; secs=${2:-8}; target=${3:-http://127.0.0.1:8090}
RUNG=${RUNG:-/tmp/rung}
out=$(mktemp); trap 'rm -f "$out"' EXIT

run() { # name command...
	local name=$1 load; shift
	load=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -f 'cpu %U %S' "$@" >"$out" 2>&1
	awk -v name="$name" -v la="$load" '
		/requests in/ { n = $1 }                                   # wrk: all it sent
		/^Requests\/sec/ { rps = $2 }
		/^requests .* sent/ { gsub(",", "", $2); gsub(/[,\/s]/, "", $4); n += $2; rps = $4 }
		/^finish/ { gsub(",", "", $2); n += $2 }                   # rung bench: and its finish phase
		/^cpu/ { cpu = $2 + $3 }
		END { printf "%-10s load %5s  requests/s %8d  client CPU %5.2f µs/request\n", name, la, rps, cpu * 1e6 / n }
	' "$out"
	${DRAIN:-true}
}

for ((i = 0; i < rounds; i++)); do
	run wrk wrk -t2 -c64 -d"${secs}s" -s collect.lua "$target/collect"
	run "rung bench" "$RUNG" bench --target "$target" --duration "${secs}s" --connections 64 --batch 1 --verify=false --quiet
done
