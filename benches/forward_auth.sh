#!/usr/bin/env bash
# Subscribes per second and server CPU per subscribe with forward auth (an auth server
# that answers in 1 ms) against the same run without it, REPEAT times each, alternating.
# Everything on loopback; every process started here is stopped here, by pid.
#
#   cargo build --release --bins && benches/forward_auth.sh
#
# Environment: N (subscribes per run, 20000), CONCURRENCY (64), REPEAT (3), WORKERS (2),
# DELAY_US (1000), AUTH_PORT (19401), RC_PORT (19402), EXTRA (more ringcast flags).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000} CONCURRENCY=${CONCURRENCY:-64} REPEAT=${REPEAT:-3} WORKERS=${WORKERS:-2}
DELAY_US=${DELAY_US:-1000} AUTH_PORT=${AUTH_PORT:-19401} RC_PORT=${RC_PORT:-19402}
BIN=target/release/ringcast
DRIVER=target/forward-auth-bench
[ -x "$BIN" ] || { echo "build first: cargo build --release --bins" >&2; exit 1; }
rustc -O --edition 2021 -o "$DRIVER" benches/forward_auth/bench.rs

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$DRIVER" auth "$AUTH_PORT" "$DELAY_US" > /dev/null &
pids+=($!)

run() { # mode: plain | auth
    local flags=(--listen "127.0.0.1:$RC_PORT" --workers "$WORKERS" --log-level warn ${EXTRA:-})
    [ "$1" = auth ] && flags+=(--auth-url "http://127.0.0.1:$AUTH_PORT/check")
    "$BIN" "${flags[@]}" 2>/dev/null &
    local rc=$!
    pids+=("$rc")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$RC_PORT") 2>/dev/null && break
        sleep 0.05
    done
    "$DRIVER" drive "127.0.0.1:$RC_PORT" 1000 "$CONCURRENCY" "$rc" > /dev/null # warm-up
    echo "$1 $("$DRIVER" drive "127.0.0.1:$RC_PORT" "$N" "$CONCURRENCY" "$rc")"
    kill "$rc"
    wait "$rc" 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) N=$N concurrency=$CONCURRENCY workers=$WORKERS auth delay ${DELAY_US}us; load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$REPEAT"); do
    run plain
    run auth
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
