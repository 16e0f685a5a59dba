#!/usr/bin/env bash
# Scale-out run: K ringcast processes sharing one loopback port (SO_REUSEPORT) and one
# private redis-server, each under this machine's 20,000 open-file limit, holding N
# subscribers in total (200,000 by default), then a fan-out phase. Writes loadgen's JSON
# to target/bench-results/cluster-<time>/. Everything it starts it stops, by pid.
#
#   benches/cluster-scale.sh [N] [K] [RATE] [DURATION]
#   benches/cluster-scale.sh 200000 12 0.5 20s
#   CONNECT_RATE=3000 benches/cluster-scale.sh    (new connections per second, default 4000)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-200000}
K=${2:-12}
RATE=${3:-0.5}
DURATION=${4:-20s}
CONNECT_RATE=${CONNECT_RATE:-4000}
PORT=29400
REDIS_PORT=29379
OUT=target/bench-results/cluster-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

cargo build --release -q -p ringcast -p ringcast-loadgen
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$OUT" >"$OUT/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

server_pids=()
for i in $(seq 1 "$K"); do
    target/release/ringcast --listen "127.0.0.1:$PORT" --workers 1 \
        --cluster "redis://127.0.0.1:$REDIS_PORT" 2>"$OUT/ringcast-$i.log" &
    pids+=($!)
    server_pids+=($!)
done
for i in $(seq 1 "$K"); do
    until grep -q "reading the cluster stream" "$OUT/ringcast-$i.log"; do sleep 0.1; done
done

pid_flags=()
for pid in "${server_pids[@]}"; do pid_flags+=(--server-pid "$pid"); done

echo "== $N subscribers over $K processes on 127.0.0.1:$PORT, fan-out at $RATE events/s for $DURATION" >&2
target/release/loadgen fanout -n "$N" -t 1 -r "$RATE" -p 64 -d "$DURATION" \
    --server "http://127.0.0.1:$PORT" --src-ips 127.0.0.2-127.0.0.17 \
    --connect-rate "$CONNECT_RATE" --connect-inflight 512 --drain-timeout 60s \
    "${pid_flags[@]}" --json "$OUT/fanout.json" -q | tee "$OUT/fanout.txt"
echo "results in $OUT" >&2
