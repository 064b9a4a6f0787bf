#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./dev.sh run [weron signaler flags...]   set up, then start the signaler (in memory, :1337)
#   ./dev.sh test [pytest args...]           set up, then run the whole suite (lint, types, tests;
#                                            with no args also the Python 3.11 stage)
#   ./dev.sh test311 [pytest args...]        set up, then run the Python 3.11 stage alone
#   ./dev.sh bench [--quick]                 set up, then run the signaler benchmark
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
# Debian packages the suite needs: coturn is the TURN server of the --force-relay tests,
# redis-server the Redis the Redis-restart test starts and stops on a port of its own;
# iproute2, iputils-ping and iperf3 build and measure the namespace lab of the VPN tests;
# wireguard-go and wireguard-tools (wg) are the stock WireGuard of the interop lab;
# nftables and conntrack make and flush the home-router NATs of the gonet NAT lab;
# chromium is the real browser of the browser peer's tests.
SYSTEM_PACKAGES=(ca-certificates coturn redis-server iproute2 iputils-ping iperf3 wireguard-go wireguard-tools nftables conntrack chromium)
# npm packages of the tests (package-lock.json in each): the OpenID provider of the OIDC tests,
# playwright-core driving Chromium in the browser tests (it never downloads a browser).
NODE_TEST_DIRS=(tests/e2e/oidc tests/e2e/browser)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The oldest Python weron supports: dev.sh test also runs the chat and utility tests on it,
# in a venv of its own (aiortc only: libdatachannel-py has wheels for CPython 3.12+ only).
OLDEST_PYTHON=3.11
OLDEST_VENV=.venv311
# Tests run two at a time in the whole suite (WERON_TEST_WORKERS to change it).
WORKERS=${WERON_TEST_WORKERS:-2}

python_is() {
    # python_is CANDIDATE TEST: CANDIDATE runs, makes venvs (Debian: python3-venv) and its
    # version passes TEST (a Python expression on v, the (major, minor) pair).
    "$1" -c "import sys, ensurepip, venv; v = sys.version_info[:2]; sys.exit(not ($2))" \
        >/dev/null 2>&1
}

find_python() {
    # The Python of the main venv: 3.12+ (the one .python-version selects through pyenv, else
    # any on PATH), else 3.11 (aiortc only). Prints its path; status 1 when there is none.
    local candidate test
    for test in "v >= (3, 12)" "v >= (3, 11)"; do
        for candidate in "$(pyenv which python 2>/dev/null || true)" python3.14 python3.13 \
            python3.12 python3.11 python3 "$HOME"/.pyenv/versions/3.1[1-9]*/bin/python3; do
            [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
            if python_is "$candidate" "$test"; then
                command -v "$candidate"
                return 0
            fi
        done
    done
    return 1
}

find_oldest_python() {
    # Python $OLDEST_PYTHON, the system's first (Debian 12's python3); status 1 when none.
    local candidate
    for candidate in "/usr/bin/python$OLDEST_PYTHON" "python$OLDEST_PYTHON" python3 \
        "$HOME"/.pyenv/versions/"$OLDEST_PYTHON".*/bin/python3; do
        command -v "$candidate" >/dev/null 2>&1 || continue
        if python_is "$candidate" "v == ($(tr . , <<<"$OLDEST_PYTHON"))"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
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
    # Another apt at work (unattended upgrades, a second checkout setting up) is waited for.
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
}

setup_venv() {
    # setup_venv VENV EXTRAS PYTHON: create VENV with PYTHON when missing, (re)install weron.
    local venv=$1 extras=$2 python=$3 stamp="$1/.installed-$2"
    if [ ! -x "$venv/bin/python" ]; then
        log "Creating $venv with $python"
        "$python" -m venv "$venv"
    fi
    # Reinstall when pyproject.toml changed since the last install.
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "Installing weron${extras:+[$extras]} into $venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
        touch "$stamp"
    fi
}

setup_main_venv() {
    local python=""
    if [ ! -x "$VENV/bin/python" ]; then
        python=$(find_python) || {
            echo "error: no Python 3.11 or newer with venv found (3.12+ is faster: its" \
                "libdatachannel engine); install one (Debian/Ubuntu: sudo apt install" \
                "python3 python3-venv; or pyenv install 3.12) and run $0 again" >&2
            exit 1
        }
    fi
    setup_venv "$VENV" "$1" "$python"
}

install_node_test_packages() {
    # The OIDC and browser tests skip with a reason when node/npm or the registry are missing.
    local dir stamp
    command -v npm >/dev/null 2>&1 || {
        log "npm not found: the OIDC and browser tests will be skipped"
        return
    }
    for dir in "${NODE_TEST_DIRS[@]}"; do
        stamp="$dir/node_modules/.package-lock.json"
        [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ] && continue
        log "Installing the tests' npm packages (npm ci in $dir)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
            log "npm ci failed in $dir: its tests will be skipped"
    done
}

oldest_python() {
    # The Python for $OLDEST_VENV: printed when the main venv runs a newer one and Python
    # $OLDEST_PYTHON is installed, else nothing (and a note on stderr).
    if python_is "$VENV/bin/python" "v == ($(tr . , <<<"$OLDEST_PYTHON"))"; then
        return 0 # the main venv already runs it
    fi
    find_oldest_python || log "No Python $OLDEST_PYTHON found: its test stage is skipped"
}

test_oldest() {
    # The fast set, then (with no arguments) the chat and utility end-to-end tests (aiortc
    # only), on Python $OLDEST_PYTHON.
    log "pytest on Python $OLDEST_PYTHON ($OLDEST_VENV)"
    if [ $# -gt 0 ]; then
        "$OLDEST_VENV/bin/pytest" "$@"
        return
    fi
    # Two at a time, as in the main stage; the crowds of ten (solo) run there only.
    "$OLDEST_VENV/bin/pytest" -n "$WORKERS" -m "not solo" \
        tests/unit tests/e2e/test_chat.py tests/e2e/test_utilities.py
}

command=${1:-}
shift || true
case "$command" in
run)
    setup_main_venv ""
    exec "$VENV/bin/weron" signaler "$@"
    ;;
test)
    install_system_packages
    setup_main_venv dev
    oldest=$(oldest_python)
    [ -z "$oldest" ] || setup_venv "$OLDEST_VENV" dev "$oldest"
    install_node_test_packages
    log "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    log "mypy"
    "$VENV/bin/mypy"
    log "pytest"
    if [ $# -eq 0 ]; then
        # The whole suite: most tests wait on processes and timers, so two run at a time
        # (pytest-xdist); the ones that time themselves or load both cores (marked solo:
        # benchmarks, floods, crowds of ten) run afterwards, alone. CI stays under 30 minutes.
        "$VENV/bin/pytest" -n "$WORKERS" -m "not solo"
        "$VENV/bin/pytest" -m solo
    else
        "$VENV/bin/pytest" "$@"
    fi
    # The whole suite (no arguments, as in CI) includes the Python $OLDEST_PYTHON stage.
    if [ $# -eq 0 ] && [ -n "$oldest" ]; then
        test_oldest
    fi
    ;;
test311)
    setup_main_venv dev
    oldest=$(oldest_python)
    [ -n "$oldest" ] || { echo "error: no Python $OLDEST_PYTHON next to a newer main venv" >&2; exit 1; }
    setup_venv "$OLDEST_VENV" dev "$oldest"
    test_oldest "$@"
    ;;
bench)
    setup_main_venv dev
    exec "$VENV/bin/python" bench/signaler.py "$@"
    ;;
*)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
