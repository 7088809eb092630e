#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine with Python >= 3.11:
# a virtual environment in .venv with Linebridge (editable) and its test extras,
# and the real peers the tests start: socat (serial pty pairs), mosquitto (MQTT broker),
# MariaDB (the SQL driver), CUPS and poppler (labels) and chromium (the web UI driven by Playwright), from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v socat >/dev/null || missing+=(socat)
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)   # the tests start their own broker
[ -x /usr/bin/chromium ] || missing+=(chromium)        # the web UI's browser tests (headless)
command -v systemd-analyze >/dev/null || missing+=(systemd)   # unit checks: verify, security, sysusers, tmpfiles
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)   # the SQL driver's tests start their own server (mariadb-install-db)
[ -x /usr/sbin/cupsd ] || missing+=(cups-daemon)       # the label tests start their own CUPS (a raw queue to a file)
command -v lpadmin >/dev/null || missing+=(cups-client)  # ... and add that queue with lpadmin, read its jobs with lpstat
command -v pdftoppm >/dev/null || missing+=(poppler-utils)   # PDF labels rendered to images, their barcodes decoded
command -v faketime >/dev/null || missing+=(faketime)   # `linebridge soak`: wall-clock steps of the gateway (libfaketime)
# the flashable image (image/build.sh, image/test-boot.sh, tests/deploy/test_image.py)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)        # Debian root file systems
command -v arch-test >/dev/null || missing+=(arch-test)           # mmdebstrap's check that arm64 binaries run
[ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)   # arm64 packages' scripts and pip, under binfmt_misc
[ -x /usr/sbin/update-binfmts ] || missing+=(binfmt-support)
[ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)                # partitions as files: mkfs.ext4 -d, debugfs
[ -x /usr/sbin/mkfs.vfat ] || missing+=(dosfstools)
command -v mcopy >/dev/null || missing+=(mtools)                  # files into and out of the FAT boot partition
[ -x /usr/sbin/sfdisk ] || missing+=(fdisk)                       # partition tables on an image file
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)   # the boot test
command -v qemu-system-aarch64 >/dev/null || missing+=(qemu-system-arm)   # the Pi image on QEMU's raspi3b
command -v ssh >/dev/null || missing+=(openssh-client)            # the boot test logs in with the saved key
command -v qemu-img >/dev/null || missing+=(qemu-utils)           # its qcow2 overlay
[ -e /usr/share/OVMF/OVMF_CODE_4M.ms.fd ] || missing+=(ovmf)      # UEFI firmware, with Secure Boot
command -v curl >/dev/null || missing+=(curl)
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
.venv/bin/python -m pip install -q -e '.[all,test]'

# Real Odoo peers for tests/real_odoo (PostgreSQL, one venv and template database per version, cached):
# only where LINEBRIDGE_ODOO_PEERS names the folder of Odoo tarballs or trees (see README).
bash tests/setup_odoo.sh
