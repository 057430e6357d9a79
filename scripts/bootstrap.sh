#!/usr/bin/env bash
# Set up l4kit on a fresh Debian machine (as root) and run something.
#
#   bash scripts/bootstrap.sh demo   # install, then the responder in a throw-away
#                                    # namespace with `echo toppage | nc` against it
#   bash scripts/bootstrap.sh test   # install, then lint, types, layers and the whole test suite
#
# System packages come from scripts/system-packages.txt (the Dockerfile reads the
# same list); Python packages go into ./.venv. Re-running is cheap: what is already
# installed is skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
what=${1:-demo}
shift || true

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_system_packages() {
    local wanted=() missing=()
    mapfile -t wanted < <(grep -v '^\s*#' scripts/system-packages.txt | grep -v '^\s*$')
    python3 -c 'import venv, ensurepip' 2>/dev/null || wanted+=(python3 python3-venv python3-pip)
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

install_python_packages() {
    local extra=$1
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        python3 -m venv .venv
    fi
    log "installing l4kit${extra} into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".${extra}"
}

case "$what" in
demo)
    install_system_packages
    install_python_packages ""
    log "running: l4kit demo"
    exec .venv/bin/l4kit demo "$@"
    ;;
test)
    install_system_packages
    install_python_packages "[dev]"
    exec bash scripts/check.sh "$@"
    ;;
*)
    echo "usage: bash scripts/bootstrap.sh demo|test" >&2
    exit 2
    ;;
esac
