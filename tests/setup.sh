#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine with Python >= 3.11:
# a virtual environment in .venv with Linebridge (editable) and its test extras,
# and the real peers the tests start: socat (serial pty pairs), mosquitto (MQTT broker)
# and chromium (the web UI driven by Playwright), from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v socat >/dev/null || missing+=(socat)
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)   # the tests start their own broker
[ -x /usr/bin/chromium ] || missing+=(chromium)        # the web UI's browser tests (headless)
command -v systemd-analyze >/dev/null || missing+=(systemd)   # unit checks: verify, security, sysusers, tmpfiles
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "tests/setup.sh: Python >= 3.11 is required ($PY is $("$PY" --version 2>&1))" >&2
    exit 1
fi
if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c 'import ensurepip' 2>/dev/null; then
    # Debian splits venv out of the interpreter package
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
