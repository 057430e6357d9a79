#!/usr/bin/env bash
# Set up l4kit on a fresh Debian machine (as root) and run something.
#
#   bash scripts/bootstrap.sh demo   # install, then the responder in a throw-away
#                                    # namespace with `echo toppage | nc` against it
#   bash scripts/bootstrap.sh test   # install, then lint, types, layers and the whole test suite
#
# System packages come from scripts/system-packages.txt (the Dockerfile reads the
# same list; `demo` leaves out those only the tests use), plus a C compiler and Python's headers: `demo` installs l4kit as a
# user does, with replay's per-packet modules compiled by mypyc (setup.py); `test`
# installs it editable (pure Python, for development) and scripts/check.sh runs
# replay's tests on a compiled build too. Python packages go into ./.venv.
# Re-running is cheap: what is already installed is skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
what=${1:-demo}
shift || true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# $1: "runtime" (what l4kit runs with) or "all" (also the packages marked "# tests").
install_system_packages() {
    local wanted=() missing=() list
    if [ "$1" = runtime ]; then
        list=$(grep -v '#\s*tests' scripts/system-packages.txt)
    else
        list=$(cat scripts/system-packages.txt)
    fi
    mapfile -t wanted < <(sed 's/\s*#.*//' <<<"$list" | grep -v '^\s*$')
    python3 -c 'import venv, ensurepip' 2>/dev/null || wanted+=(python3 python3-venv python3-pip)
    # For mypyc's C extensions (without them l4kit installs as pure Python, slower).
    command -v gcc >/dev/null || wanted+=(gcc libc6-dev)
    python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null ||
        wanted+=(python3-dev)
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -ne 0 ]; then
            echo "error: missing system packages (${missing[*]}); run this as root" >&2
            exit 1
        fi
        log "installing system packages: ${missing[*]}"
        apt-get update -qq
        # Without DEBIAN_FRONTEND, tshark's installer stops to ask about non-root capture.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

make_venv() {
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        python3 -m venv .venv
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    fi
}

# How l4kit is installed in .venv now: "regular compiled", "regular pure", "editable pure".
install_kind() { .venv/bin/python scripts/l4kit-install-kind.py 2>/dev/null || echo unknown; }

# What a user gets: a regular install, compiled. Skipped when this very source is
# already installed that way (the compile takes about half a minute). The stamp holds
# the source's hash and the kind of install it made, so an install replaced since
# (pip install -e swaps the compiled build for pure Python) is installed again.
install_l4kit() {
    make_venv
    local source
    source=$(find pyproject.toml setup.py toolkit -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.so' -print0 |
        sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    if [ "$(cat .venv/.l4kit-installed 2>/dev/null)" = "$source $(install_kind)" ]; then
        log "l4kit is installed in .venv from this source ($(install_kind))"
        return
    fi
    log "installing l4kit into .venv (compiling replay with mypyc)"
    .venv/bin/python -m pip install -q --constraint scripts/docker-constraints.txt .
    echo "$source $(install_kind)" >.venv/.l4kit-installed
}

# For development: editable, pure Python (setup.py), with the test tools. Both installs
# take the image's pins (scripts/docker-constraints.txt), so the tests run against the
# versions the image ships, whatever the index has released since.
install_l4kit_dev() {
    make_venv
    log "installing l4kit[dev] into .venv (editable)"
    rm -f .venv/.l4kit-installed
    .venv/bin/python -m pip install -q --constraint scripts/docker-constraints.txt -e ".[dev]"
}

case "$what" in
demo)
    install_system_packages runtime
    install_l4kit
    log "running: l4kit demo"
    exec .venv/bin/l4kit demo "$@"
    ;;
test)
    install_system_packages all
    install_l4kit_dev
    exec bash scripts/check.sh "$@"
    ;;
*)
    echo "usage: bash scripts/bootstrap.sh demo|test" >&2
    exit 2
    ;;
esac
