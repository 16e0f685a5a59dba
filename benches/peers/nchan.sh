#!/usr/bin/env bash
# A private Nchan (nginx + libnginx-mod-nchan) instance, a peer in ringcast's benchmarks.
#
# URL templates (TOPIC is the channel id, PORT as given to `start`):
#   subscribe: GET  http://127.0.0.1:PORT/sub/TOPIC   -> text/event-stream
#   publish:   POST http://127.0.0.1:PORT/pub/TOPIC   body = event data
# A subscriber must send `Accept: text/event-stream` (Nchan answers 403 otherwise).
#
# Usage:
#   nchan.sh install          apt-get install nginx + libnginx-mod-nchan (only if missing)
#   nchan.sh start PORT DIR [TLS_DIR]
#                             write DIR/nginx.conf from nchan.conf.in and start nginx
#                             (2 workers, 127.0.0.1:PORT only); prints master and worker pids;
#                             with TLS_DIR, the port speaks TLS with TLS_DIR/cert.pem and
#                             key.pem and nginx's TLS defaults (ssl_buffer_size 16k, no
#                             session cache)
#   nchan.sh stop DIR         stop the nginx whose pid is in DIR/nginx.pid (only that one)
#   nchan.sh pids DIR         master pid then worker pids, one a line (for RSS/CPU sampling)
#
# Nothing here touches the system nginx: the config, pid file, error log and temp
# directories all live in DIR, and stop/pids act only on the pid recorded there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/nchan.conf.in"
NGINX="${NGINX:-/usr/sbin/nginx}"
MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

die() { echo "nchan.sh: $*" >&2; exit 1; }

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd_install() {
    if [[ -x "$NGINX" && -f "$MODULE" ]]; then
        echo "nginx and the nchan module are already installed"
        return
    fi
    # Debian bookworm: the `nginx` package holds the binary; the module is packaged apart.
    if ! apt-cache show nginx libnginx-mod-nchan >/dev/null 2>&1; then
        apt-get update
    fi
    apt-get install -y nginx libnginx-mod-nchan
}

# The pid recorded in DIR, if that process is alive and is an nginx master started
# with this DIR as its prefix. Prints nothing otherwise.
master_pid() {
    local dir="$1" pid
    [[ -f "$dir/nginx.pid" ]] || return 0
    pid="$(tr -d '[:space:]' <"$dir/nginx.pid")"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 0
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    if [[ "$cmdline" == *nginx* && "$cmdline" == *"-c $dir/nginx.conf"* ]]; then
        echo "$pid"
    fi
}

worker_pids() {
    ps -o pid= --ppid "$1" | tr -d ' '
}

cmd_start() {
    local port="${1:-}" dir="${2:-}" tls="${3:-}"
    [[ "$port" =~ ^[0-9]+$ && -n "$dir" ]] || usage
    [[ -x "$NGINX" && -f "$MODULE" ]] || die "nginx or the nchan module is missing: run '$0 install'"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [[ -z "$(master_pid "$dir")" ]] || die "an nginx is already running from $dir"

    local nofile conns
    nofile="$(ulimit -Hn)"
    [[ "$nofile" == unlimited ]] && nofile=1048576
    # Leave room for the listener, logs and the channel between the workers.
    conns=$((nofile - 100))
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" \
        -e "s|@NOFILE@|$nofile|g" -e "s|@WORKER_CONNECTIONS@|$conns|g" \
        "$TEMPLATE" >"$dir/nginx.conf"
    local scheme=http
    if [[ -n "$tls" ]]; then
        tls="$(cd "$tls" && pwd)"
        scheme=https
        sed -i -e "s|reuseport backlog=4096;|reuseport backlog=4096 ssl;\n        ssl_certificate $tls/cert.pem;\n        ssl_certificate_key $tls/key.pem;|" \
            "$dir/nginx.conf"
    fi

    # Raise our own soft limit too: the master opens the listener before the workers
    # apply worker_rlimit_nofile.
    ulimit -Sn "$nofile"
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -t -q
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"

    local pid="" i
    for i in $(seq 50); do
        pid="$(master_pid "$dir")"
        [[ -n "$pid" && "$(worker_pids "$pid" | wc -l)" -ge 2 ]] && break
        sleep 0.1
    done
    [[ -n "$pid" ]] || die "nginx did not start; see $dir/error.log"
    echo "master $pid"
    echo "workers $(worker_pids "$pid" | tr '\n' ' ')"
    echo "listen=127.0.0.1:$port subscribe=$scheme://127.0.0.1:$port/sub/TOPIC publish=$scheme://127.0.0.1:$port/pub/TOPIC"
}

cmd_stop() {
    local dir="${1:-}" pid i
    [[ -n "$dir" && -d "$dir" ]] || usage
    dir="$(cd "$dir" && pwd)"
    pid="$(master_pid "$dir")"
    [[ -n "$pid" ]] || { echo "no nginx running from $dir"; return; }
    kill -QUIT "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { echo "stopped $pid"; return; }
        sleep 0.1
    done
    # Graceful quit waits for open streams; subscribers never end on their own.
    kill -TERM "$pid"
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { echo "stopped $pid"; return; }
        sleep 0.1
    done
    die "nginx $pid did not stop"
}

cmd_pids() {
    local dir="${1:-}" pid
    [[ -n "$dir" && -d "$dir" ]] || usage
    dir="$(cd "$dir" && pwd)"
    pid="$(master_pid "$dir")"
    [[ -n "$pid" ]] || die "no nginx running from $dir"
    echo "$pid"
    worker_pids "$pid"
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    pids) shift; cmd_pids "$@" ;;
    *) usage ;;
esac
