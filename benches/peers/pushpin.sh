#!/usr/bin/env bash
# A private Pushpin instance (Debian's `pushpin`, with condure and zurl) and the origin
# it proxies to: a peer in ringcast's benchmarks.
#
# URL templates (TOPIC is the channel, PORT as given to `start`):
#   subscribe: GET  http://127.0.0.1:PORT/sub/TOPIC        -> text/event-stream
#   publish:   POST http://127.0.0.1:PORT+1/publish/       body = Pushpin's JSON items:
#     {"items":[{"channel":"TOPIC","formats":{"http-stream":{"content":"data: ...\n\n"}}}]}
# The origin (grip_origin.py) listens on PORT+2 and answers each subscribe with GRIP
# instructions (hold as a stream on channel TOPIC).
#
# Usage:
#   pushpin.sh install        apt-get install pushpin (with condure and zurl), only if missing
#   pushpin.sh start PORT DIR write DIR/pushpin.conf from pushpin.conf.in, start the origin and
#                             Pushpin (127.0.0.1 only) and wait until both listen
#   pushpin.sh stop DIR       stop the Pushpin and the origin whose pids are in DIR (only those)
#   pushpin.sh pids DIR       Pushpin's runner, its four services, then the origin, one a line
#                             (for RSS/CPU sampling)
# PUSHPIN_LOG_LEVEL (default 1, warnings) sets Pushpin's log_level for `start`: 3 logs
# every message between its services, to DIR/pushpin.log.
#
# Nothing here touches a system Pushpin: config, routes, logs and unix sockets live in
# DIR, and stop/pids act only on the pids recorded there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/pushpin.conf.in"
ORIGIN="$HERE/grip_origin.py"

die() { echo "pushpin.sh: $*" >&2; exit 1; }

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

installed() { command -v pushpin >/dev/null && command -v condure >/dev/null && command -v zurl >/dev/null; }

cmd_install() {
    if installed; then
        echo "pushpin, condure and zurl are already installed"
        return
    fi
    apt-cache show pushpin >/dev/null 2>&1 || apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pushpin condure zurl
}

# The pid recorded in DIR/NAME.pid if that process is alive and its command line holds
# MATCH; nothing otherwise.
live_pid() {
    local dir="$1" name="$2" match="$3" pid
    [[ -f "$dir/$name.pid" ]] || return 0
    pid="$(tr -d '[:space:]' <"$dir/$name.pid")"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 0
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == *"$match"* ]] && echo "$pid"
    return 0
}
runner_pid() { live_pid "$1" pushpin "--config $1/pushpin.conf"; }
origin_pid() { live_pid "$1" origin "$ORIGIN"; }

# True once a socket listens on 127.0.0.1:PORT. Asked of the kernel (ss), not by
# connecting: a probe connection that closes at once is a client Pushpin would have to
# handle while its services start.
listening() { [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }

# Starts the origin and Pushpin; a second and a third try if they do not come up (one
# start in about twenty, in a long benchmark run, saw Pushpin's services exit at once;
# the log of every try is kept in DIR/pushpin.log).
cmd_start() {
    local port="${1:-}" dir="${2:-}" try
    [[ "$port" =~ ^[0-9]+$ && -n "$dir" ]] || usage
    installed || die "pushpin is missing: run '$0 install'"
    mkdir -p "$dir/run" "$dir/log"
    dir="$(cd "$dir" && pwd)"
    [[ -z "$(runner_pid "$dir")" ]] || die "a pushpin is already running from $dir"
    : >"$dir/pushpin.log"
    for try in 1 2 3; do
        start_once "$port" "$dir" && return
        echo "pushpin.sh: try $try did not start; see $dir/pushpin.log" >&2
        sleep 2
    done
    die "pushpin did not start"
}

start_once() {
    local port="$1" dir="$2"
    local control=$((port + 1)) origin=$((port + 2)) nofile key
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited ]] && nofile=1048576
    key="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@CONTROL_PORT@|$control|g" \
        -e "s|@MAXCONN@|$((nofile - 200))|g" -e "s|@SIG_KEY@|$key|g" \
        -e "s|@LOG_LEVEL@|${PUSHPIN_LOG_LEVEL:-1}|g" "$TEMPLATE" >"$dir/pushpin.conf"
    echo "* 127.0.0.1:$origin" >"$dir/routes"
    # condure holds every client connection: give the whole tree the hard limit.
    ulimit -Sn "$nofile"

    setsid python3 "$ORIGIN" "$origin" >"$dir/origin.log" 2>&1 </dev/null &
    echo $! >"$dir/origin.pid"
    setsid pushpin --config "$dir/pushpin.conf" --merge-output >>"$dir/pushpin.log" 2>&1 </dev/null &
    echo $! >"$dir/pushpin.pid"

    local i
    for i in $(seq 100); do
        if listening "$port" && listening "$control" && listening "$origin"; then
            echo "runner $(runner_pid "$dir")"
            echo "origin $(origin_pid "$dir")"
            echo "listen=127.0.0.1:$port subscribe=http://127.0.0.1:$port/sub/TOPIC publish=http://127.0.0.1:$control/publish/"
            return 0
        fi
        [[ -n "$(runner_pid "$dir")" && -n "$(origin_pid "$dir")" ]] || break
        sleep 0.1
    done
    cat "$dir/origin.log" >&2
    cmd_stop "$dir" >&2
    return 1
}

# Sends TERM to PID, waits up to 5 s, then KILL.
end() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { echo "stopped $pid"; return; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    echo "killed $pid"
}

cmd_stop() {
    local dir="${1:-}" pid
    [[ -n "$dir" && -d "$dir" ]] || usage
    dir="$(cd "$dir" && pwd)"
    # The runner stops its services itself; a service left over is ended by its pid.
    local services=()
    pid="$(runner_pid "$dir")"
    if [[ -n "$pid" ]]; then
        mapfile -t services < <(ps -o pid= --ppid "$pid" | tr -d ' ')
        end "$pid"
        for s in "${services[@]}"; do kill -0 "$s" 2>/dev/null && end "$s"; done
    else
        echo "no pushpin running from $dir"
    fi
    pid="$(origin_pid "$dir")"
    [[ -z "$pid" ]] || end "$pid"
}

cmd_pids() {
    local dir="${1:-}" pid
    [[ -n "$dir" && -d "$dir" ]] || usage
    dir="$(cd "$dir" && pwd)"
    pid="$(runner_pid "$dir")"
    [[ -n "$pid" ]] || die "no pushpin running from $dir"
    echo "$pid"
    ps -o pid= --ppid "$pid" | tr -d ' '
    origin_pid "$dir"
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    pids) shift; cmd_pids "$@" ;;
    *) usage ;;
esac
