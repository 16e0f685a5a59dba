#!/usr/bin/env bash
# Installs what the tests drive, when it is missing: Debian's chromium and redis-server, the
# pinned node modules (package-lock.json) and a venv with the pinned Python packages
# (requirements.txt). Idempotent and quiet: a second run checks and does nothing.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '== %s\n' "$*" >&2; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# A real browser. `npx playwright install` downloads its own build, which this
# environment cannot do; playwright-core drives Debian's chromium instead.
if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be empty or stale (their versions gone from the mirror).
    if ! apt-cache show chromium >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    if ! $sudo apt-get install -y -qq chromium >/dev/null; then
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq chromium >/dev/null
    fi
fi

# A real Redis for tests/cluster.rs (each test starts its own on a free loopback port).
if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -qq redis-server >/dev/null 2>&1; then
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq redis-server >/dev/null
    fi
    # The package may start a system service; the tests do not use it.
    if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
fi

# Node clients. A copy of the lock file marks an install that is up to date.
if ! cmp -s package-lock.json node_modules/.ringcast-installed-lock.json; then
    log "installing node modules (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    cp package-lock.json node_modules/.ringcast-installed-lock.json
fi

# Python client, in a venv of its own so that the system's packages stay untouched.
if ! cmp -s requirements.txt .venv/.ringcast-installed-requirements.txt; then
    log "installing python packages (.venv)"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
    cp requirements.txt .venv/.ringcast-installed-requirements.txt
fi
