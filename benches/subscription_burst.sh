#!/usr/bin/env bash
# benches/subscription_burst.sh FLAG PORT OUT: run from the repository root after
# `cargo build --release --workspace --bins`; FLAG is "" or --subscription-events.
# One run: ringcast with or without --subscription-events, a watcher on one topic's
# subscription events, 10,000 subscribers on their own topics opened as fast as possible,
# health probes every 50 ms.
set -u
flag=$1; port=$2; out=$3
./target/release/ringcast --listen 127.0.0.1:$port --workers 2 $flag >/dev/null 2>&1 &
pid=$!
sleep 0.5
timeout 30 curl -sN "http://127.0.0.1:$port/events?topic=sys:subscriptions/b7" > $out.watch &
cpid=$!
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
./target/release/loadgen idle --server http://127.0.0.1:$port -n 10000 -t 10000 --src-ips 127.0.0.2-127.0.0.5 \
   --topic-prefix b --connect-rate 100000 -d 3s --probe-interval 50ms --server-pid $pid --json $out.json -q >/dev/null 2>&1
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
ev=$(curl -s http://127.0.0.1:$port/metrics | grep '^ringcast_subscription_events_total' | awk '{print $2}')
kill $cpid 2>/dev/null; kill $pid; wait $pid 2>/dev/null
echo "flag=${flag:-none} cpu_ticks=$((t1-t0)) events=$ev joins_seen=$(grep -c 'event: join' $out.watch)"
