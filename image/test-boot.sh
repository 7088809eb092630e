#!/usr/bin/env bash
# Boots a Linebridge image in QEMU and checks that it comes up as a gateway: the x86-64
# image through its real boot path (UEFI firmware, shim, GRUB), the arm64 image on QEMU's
# Raspberry Pi 3B model (raspi3b; QEMU does not run the Pi's GPU firmware, so the kernel,
# initramfs, device tree and cmdline.txt are taken from the image's boot partition).
#
#   image/test-boot.sh IMG [--timeout S] [--no-watchdog] [--reboot] [--secure-boot]
#                          [--disk-size 8G] [--keep DIR]
#
# The image itself is never written: QEMU runs on a qcow2 overlay (larger than the image,
# so the first boot's growth of the data partition is exercised) in a scratch directory.
# x86-64: Debian's OVMF (--secure-boot: the build with Microsoft's keys enrolled and Secure
# Boot enforced), KVM when /dev/kvm is usable, else TCG. arm64: TCG, 4 Cortex-A53 cores,
# Ethernet on USB. Serial console to a log file; user networking with the guest's 8443
# forwarded to a free loopback port.
#
# Passes when, within --timeout seconds of the start (180; 420 for arm64):
#   - https://127.0.0.1:PORT/setup answers with the first-setup page and the device's
#     identity (gateway id, "Signing key id", the TLS certificate's SHA-256, which must be
#     the certificate the server presents)
#   - the serial console shows the setup code, that SHA-256 and the self-test line
#     "linebridge-selftest: service=active rootfs=ro data=/var/lib/linebridge ..."
#     with the data partition grown beyond its flashed size
# and then (unless --no-watchdog) the self-test freezes the gateway with SIGSTOP and
# systemd's watchdog restarts it: "watchdog=restarted". The self-test does that when the
# kernel command line has linebridge.selftest=watchdog: GRUB adds it when QEMU gives the
# SMBIOS OEM string of that name; on the Pi model it is appended to cmdline.txt's line.
# --reboot (x86-64): then powers the guest off (ACPI) and boots it again from the same
# overlay; the second boot must pass the same checks with the same host name, certificate
# and setup code, and a journal that lists both boots (machine id and journal kept on the
# data partition). Last, the System page: the first administrator is made with the setup
# code, NTP servers and an SSH key are saved through the API, and the key must log in as
# root (port 22 forwarded too) where timesyncd uses the saved servers; an empty key list
# must turn SSH off. --keep DIR keeps the serial logs and the last setup page.
# Prints one line per check and the timings; exit 0 on success.
set -euo pipefail

img="" timeout="" watchdog=1 secure=0 disk_size=8G keep="" reboot=0
while [ $# -gt 0 ]; do
    case $1 in
    --timeout) timeout=$2; shift 2 ;;
    --no-watchdog) watchdog=0; shift ;;
    --secure-boot) secure=1; shift ;;
    --reboot) reboot=1; shift ;;
    --disk-size) disk_size=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "test-boot.sh: unknown option $1" >&2; exit 2 ;;
    *) img=$1; shift ;;
    esac
done
[ -f "$img" ] || { echo "usage: test-boot.sh IMG [options] (see --help)" >&2; exit 2; }
img=$(realpath "$img")
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "test-boot.sh: $tool is missing (bash tests/setup.sh installs it; qemu-system-aarch64: package qemu-system-arm)" >&2; exit 1; }
    done
}
need qemu-img curl python3 sfdisk ssh ssh-keygen
table() { sfdisk --json "$img" | python3 -c "import json, sys; t = json.load(sys.stdin)['partitiontable']; print($1)"; }
if [ "$(table "t['label']")" = dos ]; then
    pi=1
    : "${timeout:=420}"
    [ "$reboot" = 0 ] || { echo "test-boot.sh: --reboot needs ACPI: x86-64 image only" >&2; exit 2; }
    [ "$secure" = 0 ] || { echo "test-boot.sh: --secure-boot is for the x86-64 image" >&2; exit 2; }
    need qemu-system-aarch64 mcopy
else
    pi=0
    : "${timeout:=180}"
    need qemu-system-x86_64
    ovmf_dir=/usr/share/OVMF
    if [ "$secure" = 1 ]; then
        fw_code=$ovmf_dir/OVMF_CODE_4M.ms.fd fw_vars=$ovmf_dir/OVMF_VARS_4M.ms.fd
    else
        fw_code=$ovmf_dir/OVMF_CODE_4M.fd fw_vars=$ovmf_dir/OVMF_VARS_4M.fd
    fi
    [ -f "$fw_code" ] && [ -f "$fw_vars" ] || { echo "test-boot.sh: $fw_code is missing (package ovmf)" >&2; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/linebridge-boot.XXXXXX")
qemu_pid=""
finish() {
    local rc=$?
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$qemu_pid" 2>/dev/null || true
    fi
    if [ -n "$keep" ]; then
        mkdir -p "$keep" && cp "$work"/serial-*.log "$work"/qemu.log "$work"/setup.html "$keep"/ 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -n "${serial_log:-}" ] && [ -f "$serial_log" ]; then
        echo "---- last lines of the serial console ($(basename "$serial_log")) ----" >&2
        # printable ASCII only: a serial console also carries line noise and terminal codes
        tail -n 40 "$serial_log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | LC_ALL=C tr -cd '\11\12\40-\176' \
            | cut -c1-200 >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# the overlay (for the Pi model an SD card: QEMU wants its size a power of 2)
qemu-img create -q -f qcow2 -F raw -b "$img" "$work/disk.qcow2" "$disk_size"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) ssh_port=$(free_port)

if [ "$pi" = 1 ]; then
    # what the Pi's firmware would load: config.txt's kernel and initramfs, the Pi 3B's
    # device tree, cmdline.txt
    boot_offset=$(table "t['partitions'][0]['start'] * 512")
    fat() { MTOOLS_SKIP_CHECK=1 mcopy -n -i "$img@@$boot_offset" "::/$1" "$work/$1"; }
    fat config.txt; fat cmdline.txt; fat bcm2837-rpi-3-b.dtb
    pi_kernel=$(sed -n 's/^kernel=//p' "$work/config.txt")
    pi_initrd=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$work/config.txt")
    fat "$pi_kernel"; fat "$pi_initrd"
    accel_name="tcg, raspi3b"
else
    cp "$fw_vars" "$work/vars.fd"
    # KVM when /dev/kvm is usable: QEMU starts with it and the firmware runs under it for a
    # few seconds without a "KVM internal error" (a nested or software KVM such as kvm-pvm
    # may refuse the host CPU model's MSRs, or the firmware's first instructions). Else TCG.
    accel=(-accel tcg -cpu max) accel_name=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        cp "$fw_vars" "$work/probe-vars.fd"
        for cpu in host host,-arch-capabilities; do
            rm -f "$work/probe.log"
            qemu-system-x86_64 -accel kvm -cpu "$cpu" -machine q35 -m 256 -nodefaults -display none \
                -monitor none -serial none -drive if=pflash,format=raw,unit=0,readonly=on,file="$fw_code" \
                -drive if=pflash,format=raw,unit=1,file="$work/probe-vars.fd" > "$work/probe.log" 2>&1 &
            probe=$!
            sleep 4
            if kill -0 "$probe" 2>/dev/null && ! grep -q "internal error" "$work/probe.log"; then
                kill "$probe" 2>/dev/null || true
                wait "$probe" 2>/dev/null || true
                accel=(-accel kvm -cpu "$cpu") accel_name="kvm, -cpu $cpu"
                break
            fi
            kill "$probe" 2>/dev/null || true
            wait "$probe" 2>/dev/null || true
        done 2>/dev/null   # bash's own "Aborted" notice of a failed probe
        [ "$accel_name" != tcg ] || echo "test-boot.sh: /dev/kvm does not run the firmware ($(grep -m1 -o 'KVM internal error.*\|error:.*' "$work/probe.log" || true)); using TCG"
    fi
    machine=q35
    secure_args=()
    if [ "$secure" = 1 ]; then
        machine=q35,smm=on
        secure_args=(-global "driver=cfi.pflash01,property=secure,value=on")
    fi
fi

# one QEMU run on the overlay; BOOT is 1 or 2 (the serial log of each is kept apart)
start_qemu() {
    local boot=$1 smbios=() extra=""
    serial_log="$work/serial-$boot.log"
    t0=$(date +%s)
    if [ "$pi" = 1 ]; then
        [ "$watchdog" = 0 ] || extra=" linebridge.selftest=watchdog"
        # cmdline.txt's serial console ttyS1 (the Pi's mini UART) is QEMU's second serial
        # port; Ethernet: a USB network adapter (the Pi 3B's own is on USB too)
        qemu-system-aarch64 -machine raspi3b -kernel "$work/$pi_kernel" -initrd "$work/$pi_initrd" \
            -dtb "$work/bcm2837-rpi-3-b.dtb" -append "$(cat "$work/cmdline.txt")$extra" \
            -drive if=sd,format=qcow2,file="$work/disk.qcow2" \
            -device usb-net,netdev=net0 -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:8443,hostfwd=tcp:127.0.0.1:$ssh_port-:22" \
            -display none -monitor none -serial null -serial "file:$serial_log" \
            > "$work/qemu.log" 2>&1 &
    else
        [ "$watchdog" = 0 ] || [ "$boot" != 1 ] || smbios=(-smbios "type=11,value=linebridge.selftest=watchdog")
        qemu-system-x86_64 -machine "$machine" "${accel[@]}" -smp 2 -m 1024 "${secure_args[@]}" \
            -drive if=pflash,format=raw,unit=0,readonly=on,file="$fw_code" \
            -drive if=pflash,format=raw,unit=1,file="$work/vars.fd" \
            -drive if=virtio,format=qcow2,file="$work/disk.qcow2" \
            -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:8443,hostfwd=tcp:127.0.0.1:$ssh_port-:22" -device virtio-net-pci,netdev=net0 \
            "${smbios[@]}" \
            -display none -monitor "unix:$work/monitor.sock,server=on,wait=off" \
            -serial "file:$serial_log" -no-reboot \
            > "$work/qemu.log" 2>&1 &
    fi
    qemu_pid=$!
    echo "test-boot.sh: boot $boot of $(basename "$img") ($accel_name$([ "$secure" = 1 ] && echo ", Secure Boot"), overlay $disk_size), web UI on 127.0.0.1:$port"
}

# ACPI power button, then wait for the guest to power off (systemd stops the gateway)
power_off() {
    python3 - "$work/monitor.sock" <<'PYEOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"system_powerdown\n")
time.sleep(1)
s.close()
PYEOF
    local t=0
    while kill -0 "$qemu_pid" 2>/dev/null; do
        [ "$t" -lt 90 ] || fail "the guest did not power off within 90 s"
        sleep 1; t=$((t + 1))
    done
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    echo "ok   powered off cleanly in ${t}s"
}

elapsed() { echo $(( $(date +%s) - t0 )); }
alive() { kill -0 "$qemu_pid" 2>/dev/null || { echo "FAIL qemu exited: $(cat "$work/qemu.log")" >&2; exit 1; }; }
serial() { tr -d '\r' < "$serial_log" 2>/dev/null || true; }
fail() { echo "FAIL $*" >&2; exit 1; }
# the first serial console line part matching PATTERN, waiting until DEADLINE (seconds since
# the boot's start); empty if none by then
serial_wait() {
    local found=""
    while [ "$(elapsed)" -lt "$2" ]; do
        alive
        found=$(serial | grep -a -m1 -o "$1" || true)
        [ -z "$found" ] || break
        sleep 2
    done
    echo "$found"
}

# the checks of one boot; sets page, served, host, code, boots
check_boot() {
    local boot=$1
    # -- the setup page over HTTPS ----------------------------------------------------------
    # (a TCG guest on a busy host can take more than 5 s for a first page: 20 s per try; the
    # last try's answer goes into the failure message: refused, reset, timed out or a status)
    page="" last=""
    while [ "$(elapsed)" -lt "$timeout" ]; do
        alive
        last=$(curl -ksS --max-time 20 -o "$work/setup.html" -w '%{http_code}' "https://127.0.0.1:$port/setup" 2>&1 \
            | tr '\n' ' ') || true
        if [ "$last" = 200 ]; then
            page=$(cat "$work/setup.html"); break
        fi
        sleep 2
    done
    [ -n "$page" ] || fail "no setup page at https://127.0.0.1:$port/setup within ${timeout}s (last try: ${last:-nothing})"
    t_page=$(elapsed)
    for want in "First setup" "Setup code" "Signing key id" "TLS certificate SHA-256"; do
        grep -q "$want" <<<"$page" || fail "the setup page lacks \"$want\""
    done
    echo "ok   setup page answered over HTTPS after ${t_page}s"

    # the certificate the server presents is the one the page (and the console) names
    served=$(python3 - "$port" <<'PYEOF'
import hashlib, ssl, sys
pem = ssl.get_server_certificate(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(":".join(f"{b:02X}" for b in hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest()))
PYEOF
)
    grep -q "$served" <<<"$page" || fail "the page does not show the served certificate's SHA-256 $served"
    echo "ok   the page shows the served TLS certificate's SHA-256 ${served:0:23}..."

    # -- the serial console: self-test line, setup code, fingerprint -------------------------
    selftest=$(serial_wait 'linebridge-selftest: service=.*' "$timeout")
    [ -n "$selftest" ] || fail "no self-test line on the serial console within ${timeout}s"
    echo "ok   serial console: $selftest"
    grep -q 'linebridge-selftest: service=active rootfs=ro data=/var/lib/linebridge ' <<<"$selftest" \
        || fail "the self-test expects service=active rootfs=ro data=/var/lib/linebridge"
    host=$(sed -n 's/.* hostname=\([^ ]*\).*/\1/p' <<<"$selftest")
    boots=$(sed -n 's/.* boots=\([0-9]*\).*/\1/p' <<<"$selftest")
    grep -q "<dd>$host (" <<<"$page" || fail "the setup page does not show the gateway id $host"
    echo "ok   the page shows the gateway id $host"
    data_mb=$(sed -n 's/.* data_mb=\([0-9]*\).*/\1/p' <<<"$selftest")
    [ "${data_mb:-0}" -gt 1024 ] || fail "the data partition was not grown to the disk (${data_mb:-?} MB)"
    echo "ok   data partition grown to ${data_mb} MB on a $disk_size disk"
    code=""
    while [ "$(elapsed)" -lt "$timeout" ] && [ -z "$code" ]; do
        code=$(serial | grep -a -o 'one-time setup code [0-9A-F-]*' | tail -n 1 | awk '{print $NF}')
        [ -n "$code" ] || sleep 2
    done
    [ -n "$code" ] || fail "the serial console shows no setup code"
    echo "ok   serial console shows the setup code $code"
    serial | grep -a -q "TLS certificate SHA-256: $served" || fail "the serial console does not show the certificate's SHA-256"
    echo "ok   serial console shows the TLS certificate's SHA-256"
}

# the System page, as an admin would use it: the first administrator made with the setup
# code, NTP servers and an SSH key saved through the API; then root's linebridge-system
# unit restarts timesyncd with them and starts sshd, and the key logs in (and the checks
# run on the device itself); an empty key list turns SSH off again
check_system() {
    local jar="$work/cookies" url="https://127.0.0.1:$port" token csrf out status
    web() { curl -ksS --max-time 20 -c "$jar" -b "$jar" "$@"; }
    form_token() { web "$url/$1" | grep -o 'name="csrf_token" value="[^"]*"' | sed 's/.*value="//; s/"$//'; }
    token=$(form_token setup)
    status=$(web -o /dev/null -w '%{http_code}' --data-urlencode "csrf_token=$token" --data-urlencode "code=$code" \
        --data-urlencode name=admin --data-urlencode "password=$ADMIN_PASSWORD" \
        --data-urlencode "password2=$ADMIN_PASSWORD" "$url/setup")
    [ "$status" = 302 ] || fail "the first setup with the console's code answered $status"
    token=$(form_token login)
    status=$(web -o /dev/null -w '%{http_code}' --data-urlencode "csrf_token=$token" --data-urlencode name=admin \
        --data-urlencode "password=$ADMIN_PASSWORD" "$url/login")
    [ "$status" = 302 ] || fail "logging in as the new administrator answered $status"
    csrf=$(web "$url/api/v1/me" | python3 -c 'import json, sys; print(json.load(sys.stdin)["csrf_token"])')
    echo "ok   first administrator made with the setup code, logged in"
    put() { web -o "$work/put.json" -w '%{http_code}' -X PUT -H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' \
                --data-binary "$2" "$url/api/v1/system/$1"; }
    status=$(put time '{"ntp": ["ntp.linebridge.test", "192.0.2.123"]}')
    [ "$status" = 200 ] || fail "PUT /api/v1/system/time answered $status: $(cat "$work/put.json")"
    ssh-keygen -q -t ed25519 -N "" -C test-boot -f "$work/id_ed25519"
    status=$(put ssh "$(python3 -c 'import json, sys; print(json.dumps({"authorized_keys": open(sys.argv[1]).read()}))' "$work/id_ed25519.pub")")
    [ "$status" = 200 ] || fail "PUT /api/v1/system/ssh answered $status: $(cat "$work/put.json")"
    echo "ok   NTP servers and an SSH key saved through the API"
    on_device() {
        ssh -q -i "$work/id_ed25519" -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 root@127.0.0.1 "$@"
    }
    out=""
    for _ in $(seq 1 30); do
        out=$(on_device 'echo rootfs=$(findmnt -no OPTIONS / | cut -d, -f1) gateway=$(systemctl is-active linebridge) \
            ntp=$(timedatectl show-timesync -p SystemNTPServers --value | tr " " ,)' 2>/dev/null) && break
        sleep 2
    done
    [ -n "$out" ] || fail "ssh with the saved key did not log in within 60 s"
    echo "ok   ssh root@ with the saved key: $out"
    grep -q 'rootfs=ro gateway=active ntp=ntp.linebridge.test,192.0.2.123' <<<"$out" \
        || fail "on the device: expected rootfs=ro, the gateway active, timesyncd using the saved servers"
    # without the key: the server offers nothing else (no password, no keyboard-interactive)
    out=$(ssh -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o IdentitiesOnly=yes -o IdentityFile=/dev/null -o ConnectTimeout=10 root@127.0.0.1 true 2>&1 || true)
    grep -q 'Permission denied (publickey)' <<<"$out" || fail "ssh without the key: $out"
    echo "ok   without the key: Permission denied (publickey): no password login offered"
    status=$(put ssh '{"authorized_keys": ""}')
    [ "$status" = 200 ] || fail "turning SSH off answered $status"
    for _ in $(seq 1 15); do
        on_device true 2>/dev/null || break
        sleep 2
    done
    ! on_device true 2>/dev/null || fail "SSH still answers after the last key was removed"
    echo "ok   an empty key list turned SSH off"
}
ADMIN_PASSWORD="test-boot $(date +%s) pw"

# -- boot 1 (first boot) ---------------------------------------------------------------------
start_qemu 1
check_boot 1
[ "$boots" = 1 ] || fail "the first boot's journal lists $boots boots"
first_host=$host first_served=$served first_code=$code first_page=$t_page

# -- the watchdog: a frozen gateway is killed and restarted ------------------------------------
if [ "$watchdog" = 1 ]; then
    result=$(serial_wait 'linebridge-selftest: watchdog=.*' $(( $(elapsed) + 200 )))
    [ -n "$result" ] || fail "no watchdog result on the serial console"
    grep -q 'watchdog=restarted' <<<"$result" || fail "$result"
    echo "ok   $result"
    # and the restarted gateway serves its console again
    curl -ksS --max-time 10 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/setup" | grep -qx 200 \
        || fail "the setup page does not answer after the watchdog restart"
    echo "ok   setup page answers again after the restart"
fi
t_first=$(elapsed)

# -- boot 2: what the data partition keeps across a reboot -------------------------------------
if [ "$reboot" = 1 ]; then
    power_off
    start_qemu 2
    check_boot 2
    [ "$host" = "$first_host" ] || fail "the host name changed across the reboot: $first_host -> $host"
    [ "$served" = "$first_served" ] || fail "the TLS certificate changed across the reboot"
    [ "$code" = "$first_code" ] || fail "the setup code changed across the reboot: $first_code -> $code"
    [ "$boots" = 2 ] || fail "the journal lists $boots boot(s) after the reboot, not 2 (machine id or journal not kept)"
    echo "ok   reboot kept the host name, the certificate, the setup code, the machine id and the journal (boots=2)"
    check_system
    echo "PASS $(basename "$img"): setup page after ${first_page}s (first boot) and ${t_page}s (second boot); first boot's checks ${t_first}s, second ${t_page}s+ ($accel_name)"
else
    check_system
    echo "PASS $(basename "$img"): setup page after ${first_page}s; all checks done in $(elapsed)s ($accel_name)"
fi
