#!/usr/bin/env bash
# The mixed workload of issue 14: one hot topic with 10,000 subscribers saturated by
# 1 KiB events, plus 9,000 personal topics (one subscriber each) getting 2,000 events/s.
# Each repetition runs the personal load alone, then with the hot topic beside it, on a
# fresh ringcast each time, and prints the personal events' delivery latency and rate,
# the share of the personal publishing that ran beside the hot topic, and the hot
# topic's deliveries.
#
# Usage: benches/mixed.sh [REPS] [OUT_DIR]   (after cargo build --release --workspace --bins)
# SEPARATE=1 puts the hot topic on a second ringcast process (its own port): a control
# for how much of the effect is the two loads sharing the machine's two cores rather
# than sharing a server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPS=${1:-3}
OUT=${2:-target/bench-results/mixed-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
RC=${RC:-target/release/ringcast}  # RC=path compares another build
LG=target/release/loadgen
PORT=29091
HOT_PORT=$PORT
[[ "${SEPARATE:-0}" == 1 ]] && HOT_PORT=29092

personal() { # $1: json path
    $LG fanout --server "http://127.0.0.1:$PORT" -n 9000 -t 9000 --topic-prefix p \
        --connect-rate 5000 -r 2000 --pub-conns 2 -d 10s --drain-timeout 5s \
        --src-ips 127.0.0.6-127.0.0.9 --server-pid "$SERVER" --json "$1" -q >/dev/null 2>&1 || true
}

hot() { # $1: json path
    $LG fanout --server "http://127.0.0.1:$HOT_PORT" -n 10000 -t 1 --topic-prefix h \
        --connect-rate 5000 -r 0 -p 1024 --pub-conns 2 -d 16s --drain-timeout 5s \
        --src-ips 127.0.0.2-127.0.0.5 --json "$1" -q >/dev/null 2>&1 || true
}

start() {
    $RC --listen "127.0.0.1:$PORT" --workers 2 ${RC_ARGS:-} >"$OUT/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.1; done
    echo "ringcast did not start" >&2; exit 1
}

stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }

for rep in $(seq "$REPS"); do
    start; personal "$OUT/alone.$rep.json"; stop
    start
    if [[ $HOT_PORT != "$PORT" ]]; then
        $RC --listen "127.0.0.1:$HOT_PORT" --workers 2 >"$OUT/hot-server.log" 2>&1 &
        HOT_SERVER=$!
        sleep 0.5
    fi
    hot "$OUT/hot.$rep.json" & HOT=$!
    sleep 4 # the hot topic's subscribers connect and its publishers saturate it
    personal "$OUT/mixed.$rep.json"
    wait "$HOT"
    curl -sf "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics.$rep.txt" || true
    stop
    if [[ $HOT_PORT != "$PORT" ]]; then kill "$HOT_SERVER"; wait "$HOT_SERVER" 2>/dev/null || true; fi
done

python3 - "$OUT" "$REPS" <<'PY'
import json, sys
out, reps = sys.argv[1], int(sys.argv[2])
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}
def personal(d):
    lat, dl, pub = d.get("latency_us") or {}, d.get("delivery") or {}, d.get("publish") or {}
    return (f"{lat.get('p50', 0) / 1000:.2f} / {lat.get('p99', 0) / 1000:.2f} ms, "
            f"{pub.get('rate_achieved_per_s', 0):,.0f} ev/s, lost {dl.get('lost')}")
def metric(rep, name):
    # Summed over the server's workers, from /metrics taken as the mixed run ended.
    try:
        lines = open(f"{out}/metrics.{rep}.txt").read().splitlines()
    except OSError:
        return None
    return sum(float(l.split()[-1]) for l in lines if l.startswith(name))
def overlap(mixed, hot):
    # Share of the personal publishing phase that ran while the hot topic was published
    # to. The personal loadgen starts LEAD s after the hot one; a personal connect phase
    # that drags on (a server slow to accept) pushes its publishing past the hot topic's
    # end, and the run then mostly measures the personal load alone.
    LEAD = 4.0
    pt, ht = mixed.get("timing") or {}, hot.get("timing") or {}
    if not pt.get("run_s") or not ht.get("run_s"):
        return 0.0
    start = LEAD + pt["connect_s"]
    end = min(start + pt["run_s"], ht["connect_s"] + ht["run_s"])
    return max(0.0, end - start) / pt["run_s"]
print("rep | personal alone: p50 / p99, rate, lost | with the hot topic | overlap "
      "| hot topic deliveries/s, lost | evicted as slow | flushes cut")
for r in range(1, reps + 1):
    mixed, hotrun = load(f"{out}/mixed.{r}.json"), load(f"{out}/hot.{r}.json")
    hot = (hotrun.get("delivery") or {}).get("events_per_s", 0)
    hot_lost = (hotrun.get("delivery") or {}).get("lost")
    share = overlap(mixed, hotrun)
    slow = metric(r, 'ringcast_closes_total{reason="slow"}')
    cut = metric(r, "ringcast_flushes_cut_total")
    print(f"{r} | {personal(load(f'{out}/alone.{r}.json'))} | "
          f"{personal(mixed)} | {share:.0%} | {hot:,.0f}, lost {hot_lost} | {slow} | {cut}")
    if share < 0.9:
        print(f"   WARNING: only {share:.0%} of the personal publishing ran beside the hot topic")
PY
