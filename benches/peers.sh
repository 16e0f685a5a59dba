#!/usr/bin/env bash
# ringcast against its peers: the same load-generator scenarios against ringcast, Nchan,
# Pushpin, the axum reference and the floor, one server at a time, alternating, on
# loopback.
#
# Usage: benches/peers.sh [--quick] [--only SCENARIO[,...]] [--servers NAME[,...]]
#                         [--reps N] [--out DIR] [--no-build] [--no-criterion] [--no-report]
#                         [--base REV] [--pin]
#
#   --quick          small N and short durations: a smoke test of the whole pipeline
#   --only LIST      scenarios to run (default: all; see `--list`)
#   --servers LIST   any of ringcast,ringcast-legacy,ringcast-base,nchan,pushpin,axum,
#                    floor,ringcast-tls,nchan-tls (default: ringcast,nchan,pushpin,axum,
#                    floor, and ringcast-legacy for saturated-admission); pushpin is
#                    Pushpin with the origin benches/peers/grip_origin.py behind it,
#                    publishing through its HTTP API; ringcast-legacy is ringcast
#                    on its epoll driver (--driver legacy); the -tls servers serve https://
#                    with one certificate made for the run (P-256, DIR/tls), loadgen
#                    trusting it with --ca; Nchan's TLS is nginx's own with its defaults
#   --base REV       the git revision that server ringcast-base is built from (exported
#                    with `git archive` into target/base/REV, built there): a before/after
#                    comparison of two commits in the same run
#   --pin            server on CPU 0 with one worker, loadgen on the other CPUs (taskset):
#                    the two no longer take cycles from each other, so a change in the
#                    client's cost cannot show up as the server's (Nchan is not pinned)
#   --reps N         repetitions of every scenario (default 2; servers alternate within
#                    each repetition, and the order rotates between repetitions)
#   --out DIR        results directory (default target/bench-results/<UTC timestamp>)
#   --no-build       use the release binaries already in target/release
#   --no-criterion   skip `cargo bench` (the criterion micro-benches)
#   --no-report      do not rewrite BENCHMARKS.md at the end
#   --list           print the scenarios with their loadgen arguments and exit
#
# Every server is started privately (127.0.0.1, fixed ports 29080-29084, 2 workers),
# fresh for every run, and stopped by its pid afterwards. Each run writes
# DIR/<scenario>.<server>.<rep>.json (loadgen's report) and .log (loadgen's output and
# the server's log); DIR/runs.jsonl lists every run with its exact commands, exit
# status and the load average around it; DIR/manifest.json records the environment.
# At the end benches/report.py DIR rewrites the generated part of BENCHMARKS.md.
# Scenario `latency-rN` runs at any rate N (the default list tries 2, 5 and 10).
# Scenario `saturated-admission` is fanout-max-1KiB with loadgen's admission prober: how
# long a new health request, subscribe and publish wait while the fan-out saturates.
# To keep a run with the repository (small files, no latency histograms):
#   benches/report.py --archive benches/results/<date> DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
ONLY=""
SERVERS="ringcast,nchan,pushpin,axum,floor"
SERVERS_GIVEN=0
REPS=2
OUT=""
BUILD=1
CRITERION=1
REPORT=1
LIST=0
BASE_REV=""
PIN=0
ARGV=("$@")

die() { echo "peers.sh: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --only) ONLY="${2:?--only needs a list}"; shift ;;
        --servers) SERVERS="${2:?--servers needs a list}"; SERVERS_GIVEN=1; shift ;;
        --reps) REPS="${2:?--reps needs a number}"; shift ;;
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --no-build) BUILD=0 ;;
        --no-criterion) CRITERION=0 ;;
        --no-report) REPORT=0 ;;
        --base) BASE_REV="${2:?--base needs a git revision}"; shift ;;
        --pin) PIN=1 ;;
        --list) LIST=1 ;;
        -h|--help) usage ;;
        *) echo "peers.sh: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"

# --- scenarios ---------------------------------------------------------------------
# name, then loadgen's arguments (full run | quick run). Every publishing scenario but
# notify-* uses 1 topic.
SRC_IPS="127.0.0.2-127.0.0.17"
SCENARIOS=(
    idle-1k connect-19k idle-10k idle-19k
    fanout-r100-64B fanout-r100-1KiB fanout-r1000-64B fanout-r1000-1KiB
    fanout-max-64B fanout-max-1KiB saturated-admission latency-r2 latency-r5 latency-r10
    slow-base slow-100
)
# Not in the default run (the report does not tabulate them yet): pass them with --only.
EXTRA_SCENARIOS=(notify-10k notify-r12000 notify-pipelined notify-ndjson)

scenario_args() {
    local name="$1" n19=19000 n10=10000 n1=1000 d_idle=3s d_fan=10s d_sat=5s d_lat=20s drain=10s
    local d_slow=30s
    if ((QUICK)); then
        n19=1000 n10=300 n1=100 d_idle=1s d_fan=2s d_sat=2s d_lat=3s drain=3s d_slow=5s
    fi
    local fan="fanout -n $n19 -t 1 --connect-rate 5000 --drain-timeout $drain"
    case "$name" in
        # Memory per idle subscriber: a steady ramp, then hold.
        idle-1k) echo "idle -n $n1 --connect-rate 5000 -d $d_idle" ;;
        idle-10k) echo "idle -n $n10 --connect-rate 5000 -d $d_idle" ;;
        idle-19k) echo "idle -n $n19 --connect-rate 5000 -d $d_idle" ;;
        # Connection establishment: no rate cap, loadgen's default 256 connects in flight.
        connect-19k) echo "idle -n $n19 --connect-rate 1000000 -d 1s" ;;
        # Fan-out throughput and CPU per delivery.
        fanout-r100-64B) echo "$fan -r 100 -p 64 -d $d_fan" ;;
        fanout-r100-1KiB) echo "$fan -r 100 -p 1KiB -d $d_fan" ;;
        fanout-r1000-64B) echo "$fan -r 1000 -p 64 -d $d_sat" ;;
        fanout-r1000-1KiB) echo "$fan -r 1000 -p 1KiB -d $d_sat" ;;
        fanout-max-64B) echo "$fan -r 0 -p 64 -d $d_sat" ;;
        fanout-max-1KiB) echo "$fan -r 0 -p 1KiB -d $d_sat" ;;
        # Admission under saturation: fanout-max-1KiB, plus a health request, a subscribe
        # and a publish on new connections every 200 ms (reported, not judged).
        saturated-admission) echo "$fan -r 0 -p 1KiB -d $d_sat --probe-interval 200ms" ;;
        # Latency at rates every server may sustain; the report uses the highest rate that
        # every server published at in full, with nothing lost.
        latency-r[0-9]*)
            echo "fanout -n $n19 -t 1 --connect-rate 5000 -r ${name#latency-r} -p 64 -d $d_lat --drain-timeout 5s" ;;
        # One stuck reader must cost only itself: 10,000 readers of a 1 KiB stream at
        # 50 events/s, without (slow-base) and with (slow-100) 100 more subscribers
        # (4 KiB receive buffers) that stop reading 3 s into publishing, until the drain.
        slow-base) echo "fanout -n $n10 -t 1 --connect-rate 5000 -r 50 -p 1KiB -d $d_slow --drain-timeout 5s" ;;
        slow-100) echo "slow -n $((n10 + n10 / 100)) -t 1 --connect-rate 5000 -r 50 -p 1KiB -d $d_slow --slow-share 0.0099 --slow-after 3s --drain-timeout 5s" ;;
        # Notifications: 10,000 subscribers, each on a topic of its own; one POST per
        # event over 4 keep-alive connections, as fast as answered and at 12,000/s; then
        # 16 requests in flight per connection; then NDJSON batches of 500 events.
        notify-10k) echo "fanout -n $n10 -t $n10 --connect-rate 5000 -r 0 --pub-conns 4 -d $d_fan --drain-timeout 5s" ;;
        notify-r12000) echo "fanout -n $n10 -t $n10 --connect-rate 5000 -r 12000 --pub-conns 4 -d $d_fan --drain-timeout 5s" ;;
        notify-pipelined) echo "fanout -n $n10 -t $n10 --connect-rate 5000 -r 0 --pub-conns 4 --pub-pipeline 16 -d $d_fan --drain-timeout 5s" ;;
        notify-ndjson) echo "fanout -n $n10 -t $n10 --connect-rate 5000 -r 0 --pub-conns 4 --pub-batch 500 -d $d_fan --drain-timeout 5s" ;;
        *) return 1 ;;
    esac
}

if ((LIST)); then
    for s in "${SCENARIOS[@]}" "${EXTRA_SCENARIOS[@]}"; do printf '%-20s loadgen %s\n' "$s" "$(scenario_args "$s")"; done
    exit 0
fi

SELECTED=()
if [[ -n "$ONLY" ]]; then
    IFS=, read -ra SELECTED <<<"$ONLY"
    for s in "${SELECTED[@]}"; do
        scenario_args "$s" >/dev/null || die "unknown scenario '$s' (try --list)"
    done
else
    SELECTED=("${SCENARIOS[@]}")
fi
IFS=, read -ra SERVER_LIST <<<"$SERVERS"
for s in "${SERVER_LIST[@]}"; do
    case "$s" in ringcast|ringcast-legacy|nchan|pushpin|axum|floor|ringcast-tls|nchan-tls) ;;
        ringcast-base) [[ -n "$BASE_REV" ]] || die "ringcast-base needs --base REV" ;;
        *) die "unknown server '$s'" ;; esac
done

# The servers a scenario runs on: the list, and with the default list the admission
# scenario also on ringcast's epoll driver, which has no accept stall under saturation
# (BENCHMARKS.md), so the two drivers' admission times sit side by side.
servers_of() {
    local list=("${SERVER_LIST[@]}") out=() s
    if ((!SERVERS_GIVEN)) && [[ "$1" == saturated-admission ]]; then
        list+=(ringcast-legacy)
    fi
    for s in "${list[@]}"; do
        # Only ringcast takes NDJSON batches.
        [[ "$1" == notify-ndjson && "$s" != ringcast* ]] && continue
        out+=("$s")
    done
    echo "${out[@]}"
}

# --- servers -----------------------------------------------------------------------
# Pushpin takes three: clients, its publish API (+1) and its origin (+2).
declare -A PORT=([ringcast]=29080 [ringcast-legacy]=29081 [axum]=29082 [floor]=29083 [nchan]=29084
    [ringcast-base]=29085 [ringcast-tls]=29086 [nchan-tls]=29087 [pushpin]=29088)
WORKERS=2
SERVER_PIN=()
LOADGEN_PIN=()
if ((PIN)); then
    command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
    (($(nproc) >= 2)) || die "--pin needs at least 2 CPUs"
    WORKERS=1
    SERVER_PIN=(taskset -c 0)
    LOADGEN_PIN=(taskset -c "1-$(($(nproc) - 1))")
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
NCHAN_SH="$ROOT/benches/peers/nchan.sh"
PUSHPIN_SH="$ROOT/benches/peers/pushpin.sh"

# The server being run: its name, pids (for loadgen), log, and our child's pid.
CUR_SERVER=""
CUR_PIDS=""
CUR_CHILD=""
CUR_LOG=""
CUR_CMD=""
CUR_START_LINE=""

# loadgen's arguments for a server's URLs, one a line, given the loadgen command (idle,
# fanout, slow): a preset (axum-ref and floor speak ringcast's URLs), or for Pushpin its
# subscribe path and, for a command that publishes, its publish API with each event as
# an http-stream item (the event data is JSON-safe: loadgen/src/payload.rs).
target_args() {
    local server="$1" command="$2"
    case "$server" in
        nchan*) printf '%s\n' --target nchan ;;
        pushpin)
            printf '%s\n' --target generic --sub-url '/sub/{topic}'
            if [[ "$command" != idle ]]; then
                printf '%s\n' --pub-url "http://127.0.0.1:$((PORT[pushpin] + 1))/publish/" --pub-body \
                    '{"items":[{"channel":"{topic}","formats":{"http-stream":{"content":"data: {data}\n\n"}}}]}'
            fi ;;
        *) printf '%s\n' --target ringcast ;;
    esac
}
# The scheme a server speaks.
scheme_of() { [[ "$1" == *-tls ]] && echo https || echo http; }

server_cmd() {
    local port="${PORT[$1]}"
    case "$1" in
        ringcast) echo "$BIN/ringcast --listen 127.0.0.1:$port --workers $WORKERS --drain 1s" ;;
        ringcast-legacy) echo "$BIN/ringcast --listen 127.0.0.1:$port --workers $WORKERS --drain 1s --driver legacy" ;;
        ringcast-base) echo "$BASE_BIN/ringcast --listen 127.0.0.1:$port --workers $WORKERS --drain 1s" ;;
        axum) echo "$BIN/axum-ref --listen 127.0.0.1:$port --workers $WORKERS" ;;
        floor) echo "$BIN/floor --listen 127.0.0.1:$port --workers $WORKERS" ;;
        nchan) echo "$NCHAN_SH start $port $OUT/nchan" ;;
        pushpin) echo "$PUSHPIN_SH start $port $OUT/pushpin" ;;
        ringcast-tls) echo "$BIN/ringcast --listen 127.0.0.1:$port --workers $WORKERS --drain 1s --tls-cert $TLS_DIR/cert.pem --tls-key $TLS_DIR/key.pem" ;;
        nchan-tls) echo "$NCHAN_SH start $port $OUT/nchan-tls $TLS_DIR" ;;
    esac
}

# Waits (at most 10 s) until the log holds the server's start line.
wait_started() {
    local log="$1" pid="$2" i
    for i in $(seq 100); do
        if grep -q 'listen=' "$log" 2>/dev/null; then
            grep -m1 'listen=' "$log"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "server $pid exited at start"; }
        sleep 0.1
    done
    cat "$log" >&2
    die "server $pid did not start within 10 s"
}

start_server() {
    local name="$1" log="$2"
    CUR_SERVER="$name"
    CUR_LOG="$log"
    CUR_CMD="$(server_cmd "$name")"
    if [[ "$name" == nchan* ]]; then
        $CUR_CMD >"$log" 2>&1 || { cat "$log" >&2; die "nchan did not start"; }
        CUR_START_LINE="$(grep -m1 'listen=' "$log")"
        CUR_PIDS="$("$NCHAN_SH" pids "$OUT/$name" | tr '\n' ' ')"
        CUR_CHILD=""
    elif [[ "$name" == pushpin ]]; then
        $CUR_CMD >"$log" 2>&1 || { cat "$log" >&2; die "pushpin did not start"; }
        CUR_START_LINE="$(grep -m1 'listen=' "$log")"
        CUR_PIDS="$("$PUSHPIN_SH" pids "$OUT/$name" | tr '\n' ' ')"
        CUR_CHILD=""
    else
        # Our own environment must not configure the server (ringcast reads RINGCAST_*).
        env $(env | sed -n 's/^\(RINGCAST_[A-Z_]*\)=.*/-u \1/p') "${SERVER_PIN[@]}" $CUR_CMD >"$log" 2>&1 &
        CUR_CHILD=$!
        CUR_PIDS="$CUR_CHILD"
        CUR_START_LINE="$(wait_started "$log" "$CUR_CHILD")"
    fi
    # Let the server settle before loadgen reads its RSS baseline.
    sleep 1
}

stop_server() {
    [[ -n "$CUR_SERVER" ]] || return 0
    if [[ "$CUR_SERVER" == nchan* ]]; then
        "$NCHAN_SH" stop "$OUT/$CUR_SERVER" >>"$CUR_LOG" 2>&1 || echo "peers.sh: could not stop $CUR_SERVER" >&2
    elif [[ "$CUR_SERVER" == pushpin ]]; then
        "$PUSHPIN_SH" stop "$OUT/pushpin" >>"$CUR_LOG" 2>&1 || echo "peers.sh: could not stop pushpin" >&2
    elif [[ -n "$CUR_CHILD" ]]; then
        local i
        kill -TERM "$CUR_CHILD" 2>/dev/null || true
        for i in $(seq 150); do
            kill -0 "$CUR_CHILD" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$CUR_CHILD" 2>/dev/null; then
            echo "peers.sh: $CUR_SERVER ($CUR_CHILD) ignored SIGTERM for 15 s; SIGKILL" >&2
            kill -KILL "$CUR_CHILD" 2>/dev/null || true
        fi
        wait "$CUR_CHILD" 2>/dev/null || true
    fi
    CUR_SERVER="" CUR_CHILD="" CUR_PIDS=""
}
# ringcast's slow evictions over time: "<seconds since start> <count>" at every change,
# from /metrics every 250 ms (a background job of the run, killed when loadgen ends).
sample_evictions() {
    local port="$1" t0 last="" n
    t0="$(date +%s.%N)"
    while :; do
        n="$(curl -s --max-time 1 "http://127.0.0.1:$port/metrics" |
            sed -n 's/^ringcast_closes_total{reason="slow"} //p')"
        if [[ -n "$n" && "$n" != "$last" ]]; then
            awk -v now="$(date +%s.%N)" -v t0="$t0" -v n="$n" 'BEGIN { printf "%.2f %s\n", now - t0, n }'
            last="$n"
        fi
        sleep 0.25
    done
}

trap 'stop_server' EXIT
trap 'echo "peers.sh: interrupted" >&2; exit 130' INT TERM

# --- set-up ------------------------------------------------------------------------
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-results/$STAMP}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
echo "peers.sh: results in $OUT"

if ((BUILD)); then
    cargo build --release -p ringcast -p ringcast-loadgen -p ringcast-axum-ref -p ringcast-floor
fi
for b in ringcast loadgen axum-ref floor; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (run without --no-build)"
done
if [[ -n "$BASE_REV" ]]; then
    BASE_SHA="$(git rev-parse --verify "$BASE_REV^{commit}")" || die "--base: no revision '$BASE_REV'"
    BASE_DIR="$TARGET/base/$BASE_SHA"
    BASE_BIN="$BASE_DIR/target/release"
    if [[ ! -x "$BASE_BIN/ringcast" ]]; then
        rm -rf "$BASE_DIR" && mkdir -p "$BASE_DIR"
        git archive "$BASE_SHA" | tar -x -C "$BASE_DIR"
        cargo build --release --locked --bin ringcast --manifest-path "$BASE_DIR/Cargo.toml" \
            --target-dir "$BASE_DIR/target"
    fi
    echo "peers.sh: ringcast-base is $BASE_REV ($BASE_SHA)"
fi
if [[ ",$SERVERS," == *,nchan,* || ",$SERVERS," == *,nchan-tls,* ]]; then
    "$NCHAN_SH" install
fi
if [[ ",$SERVERS," == *,pushpin,* ]]; then
    "$PUSHPIN_SH" install
fi
# One certificate for every TLS server of the run: ECDSA P-256 (what nginx and rustls
# both sign fastest), for 127.0.0.1 and localhost, not a CA (rustls refuses a CA
# certificate as a server's own).
TLS_DIR="$OUT/tls"
if [[ ",$SERVERS," == *-tls,* ]]; then
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null \
        || die "openssl could not make the run's certificate"
fi

# The environment, once; every loadgen report adds its own.
python3 - "$OUT/manifest.json" "$QUICK" "$REPS" "$SERVERS" "${SELECTED[*]}" "${ARGV[*]:-}" <<'PY'
import json, os, platform, subprocess, sys, time
out, quick, reps, servers, scenarios, argv = sys.argv[1:]
def run(*cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (p.stdout + p.stderr).strip()
    except Exception as e:  # a missing tool is recorded, not fatal
        return f"unavailable: {e}"
json.dump({
    "schema": "ringcast-peers/1",
    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "command": ("benches/peers.sh " + argv).strip(),
    "quick": quick == "1",
    "reps": int(reps),
    "servers": servers.split(","),
    "scenarios": scenarios.split(),
    "git_commit": run("git", "rev-parse", "HEAD"),
    "git_branch": run("git", "rev-parse", "--abbrev-ref", "HEAD"),
    "git_dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no")),
    "uname": " ".join(platform.uname()),
    "nproc": os.cpu_count(),
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "rustc": run("rustc", "-V"),
    "nginx": run("/usr/sbin/nginx", "-v"),
    "nchan": run("dpkg-query", "-W", "-f", "${Version}", "libnginx-mod-nchan"),
    "pushpin": run("dpkg-query", "-W", "-f", "${Version}", "pushpin"),
    "condure": run("dpkg-query", "-W", "-f", "${Version}", "condure"),
    "ulimit_nofile": run("bash", "-c", "ulimit -Hn"),
}, open(out, "w"), indent=2)
PY

# Appends one run's record to runs.jsonl (arguments are key=value strings).
record() {
    python3 - "$OUT/runs.jsonl" "$@" <<'PY'
import json, sys
rec = dict(a.split("=", 1) for a in sys.argv[2:])
for k in ("rep", "rc"):
    rec[k] = int(rec[k])
rec["server_pids"] = [int(p) for p in rec["server_pids"].split()]
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- micro-benches -----------------------------------------------------------------
if ((CRITERION)); then
    CARGS=()
    ((QUICK)) && CARGS=(-- --warm-up-time 0.5 --measurement-time 1)
    echo "peers.sh: criterion benches (load $(loadavg))"
    echo "$(loadavg)" >"$OUT/criterion.loadavg"
    set +e
    cargo bench --bench parse --bench frame --bench fanout --bench inbox --bench wheel \
        "${CARGS[@]}" 2>&1 | tee "$OUT/criterion.log" | grep -E '^[a-z_0-9]+/|time:'
    status=${PIPESTATUS[0]}
    set -e
    ((status == 0)) || die "cargo bench failed (exit $status); see $OUT/criterion.log"
    echo "$(loadavg)" >>"$OUT/criterion.loadavg"
    # Keep the estimates with the run, so the report can be regenerated from DIR alone.
    mkdir -p "$OUT/criterion"
    (cd "$TARGET/criterion" && find . -path '*/new/*' \( -name estimates.json -o -name benchmark.json \) \
        -exec cp --parents {} "$OUT/criterion/" \;)
fi

# --- load runs ---------------------------------------------------------------------
# Bound on one loadgen run (its own --deadline is shorter; this catches a hang).
BOUND=300
((QUICK)) && BOUND=120
total=0
for scenario in "${SELECTED[@]}"; do
    # shellcheck disable=SC2207
    these=($(servers_of "$scenario"))
    total=$((total + REPS * ${#these[@]}))
done
done_runs=0
failed_runs=0
for ((rep = 1; rep <= REPS; rep++)); do
    for scenario in "${SELECTED[@]}"; do
        # Rotate the server order each repetition, so no server always runs first.
        # shellcheck disable=SC2207
        these=($(servers_of "$scenario"))
        ORDER=()
        for ((i = 0; i < ${#these[@]}; i++)); do
            ORDER+=("${these[$(((i + rep - 1) % ${#these[@]}))]}")
        done
        for server in "${ORDER[@]}"; do
            base="$scenario.$server.$rep"
            done_runs=$((done_runs + 1))
            load_before="$(loadavg)"
            echo "peers.sh: [$done_runs/$total] $scenario on $server (rep $rep, load $load_before)"
            start_server "$server" "$OUT/$base.server.log"
            pid_args=()
            for p in $CUR_PIDS; do pid_args+=(--server-pid "$p"); done
            # shellcheck disable=SC2207
            lg_args=($(scenario_args "$scenario"))
            mapfile -t url_args < <(target_args "$server" "${lg_args[0]}")
            lg_args+=("${url_args[@]}" --server "$(scheme_of "$server")://127.0.0.1:${PORT[$server]}"
                --src-ips "$SRC_IPS" "${pid_args[@]}" --json "$OUT/$base.json" --quiet)
            [[ "$server" != *-tls ]] || lg_args+=(--ca "$TLS_DIR/cert.pem")
            started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
            sampler=""
            if [[ "$scenario" == slow-* && "$server" == ringcast* && "$server" != *-tls ]]; then
                sample_evictions "${PORT[$server]}" >"$OUT/$base.evictions" &
                sampler=$!
            fi
            rc=0
            timeout --kill-after=10 "$BOUND" "${LOADGEN_PIN[@]}" "$BIN/loadgen" "${lg_args[@]}" \
                >"$OUT/$base.log" 2>&1 || rc=$?
            [[ -z "$sampler" ]] || { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; }
            load_after="$(loadavg)"
            pids_used="$CUR_PIDS"
            stop_server
            ((rc == 0)) || { failed_runs=$((failed_runs + 1)); echo "peers.sh:   loadgen exit $rc (see $OUT/$base.log)"; }
            record scenario="$scenario" server="$server" rep="$rep" rc="$rc" \
                json="$base.json" log="$base.log" server_log="$base.server.log" \
                loadgen_cmd="target/release/loadgen $(printf '%q ' "${lg_args[@]}")" \
                server_cmd="${CUR_CMD/#$ROOT\//}" server_start="$CUR_START_LINE" \
                server_pids="$pids_used" started="$started" \
                loadavg_before="$load_before" loadavg_after="$load_after" \
                quick="$QUICK"
            # Let TIME_WAIT sockets and the CPU settle between runs.
            sleep 2
        done
    done
done
echo "peers.sh: $done_runs runs, $failed_runs with failed checks (load $(loadavg))"

if ((REPORT)); then
    python3 "$ROOT/benches/report.py" "$OUT"
fi
echo "peers.sh: results in $OUT"
