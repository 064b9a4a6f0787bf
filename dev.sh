#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./dev.sh run [weron signaler flags...]   set up, then start the signaler (in memory, :1337)
#   ./dev.sh test [pytest args...]           set up, then run the whole suite (lint, types, tests)
#   ./dev.sh bench [--quick]                 set up, then run the signaler benchmark
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
# Debian packages the suite needs: coturn is the TURN server of the --force-relay tests,
# redis-server the Redis the Redis-restart test starts and stops on a port of its own;
# iproute2, iputils-ping and iperf3 build and measure the namespace lab of the VPN tests;
# wireguard-go and wireguard-tools (wg) are the stock WireGuard of the interop lab;
# nftables and conntrack make and flush the home-router NATs of the gonet NAT lab.
SYSTEM_PACKAGES=(ca-certificates coturn redis-server iproute2 iputils-ping iperf3 wireguard-go wireguard-tools nftables conntrack)
# npm packages of the tests (package-lock.json): the OpenID provider of the OIDC tests.
NODE_TEST_DIR=tests/e2e/oidc

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

find_python() {
    # Python >= 3.12: the one .python-version selects through pyenv, else any on PATH.
    local candidate
    for candidate in "$(pyenv which python 2>/dev/null || true)" python3.13 python3.12 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    for candidate in "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
        [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
    echo "error: Python 3.12 or newer is needed (install it, or pyenv install 3.12)" >&2
    exit 1
}

install_system_packages() {
    local missing=()
    for package in "${SYSTEM_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "Installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

setup_venv() {
    local extras=$1 stamp="$VENV/.installed-$1"
    if [ ! -x "$VENV/bin/python" ]; then
        log "Creating virtual environment with $(find_python)"
        "$(find_python)" -m venv "$VENV"
    fi
    # Reinstall when pyproject.toml changed since the last install.
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "Installing weron${extras:+[$extras]} into $VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
        touch "$stamp"
    fi
}

install_node_test_packages() {
    # The OIDC tests skip with a reason when node/npm or the registry are missing.
    local stamp="$NODE_TEST_DIR/node_modules/.package-lock.json"
    command -v npm >/dev/null 2>&1 || { log "npm not found: the OIDC tests will be skipped"; return; }
    [ -f "$stamp" ] && [ "$stamp" -nt "$NODE_TEST_DIR/package-lock.json" ] && return
    log "Installing the test OpenID provider (npm ci in $NODE_TEST_DIR)"
    (cd "$NODE_TEST_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
        log "npm ci failed: the OIDC tests will be skipped"
}

command=${1:-}
shift || true
case "$command" in
run)
    setup_venv ""
    exec "$VENV/bin/weron" signaler "$@"
    ;;
test)
    install_system_packages
    setup_venv dev
    install_node_test_packages
    log "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    log "mypy"
    "$VENV/bin/mypy"
    log "pytest"
    exec "$VENV/bin/pytest" "$@"
    ;;
bench)
    setup_venv dev
    exec "$VENV/bin/python" bench/signaler.py "$@"
    ;;
*)
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
