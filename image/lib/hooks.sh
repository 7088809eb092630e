#!/usr/bin/env bash
# mmdebstrap hooks of image/build.sh: `hooks.sh essential|customize TARGET`.
# Run on the build host as root, with the target root file system as TARGET; the
# settings come from build.sh through LB_* environment variables.
#
#   essential  after Debian's essential packages, before the kernel: the initramfs
#              configuration and the machine-id script, so the one initramfs built
#              while the kernel is installed already has them
#   customize  after all packages: the gateway's venv (pip inside the target: under
#              qemu-user for arm64), the systemd units, users, links into the data
#              partition, /etc/fstab, enabled/disabled units, the Raspberry Pi boot files
set -euo pipefail
phase=$1
root=$2
: "${LB_IMAGE:?}" "${LB_REPO:?}" "${LB_ARCH:?}"

# a clean environment inside the target: none of the host's PIP_* settings or locale;
# the host's proxy settings, if any, are passed on
in_root() {
    local pass=() v
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [ -z "${!v:-}" ] || pass+=("$v=${!v}")
    done
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "${pass[@]}" "$@"
}

# copies part of image/rootfs/ into the target: owned by root, modes as committed
# (git keeps the executable bit), existing directories left as they are
overlay() {
    tar -C "$LB_IMAGE/rootfs" --owner=0 --group=0 --numeric-owner -cf - "$@" \
        | tar -C "$root" --no-overwrite-dir --no-same-permissions -xf -
}

essential() {
    overlay etc/initramfs-tools
    chmod 0755 "$root"/etc/initramfs-tools/hooks/* "$root"/etc/initramfs-tools/scripts/local-bottom/*
    if [ "$LB_ARCH" = arm64 ] && [ "${LB_INITRAMFS_MODULES:-list}" = list ]; then
        echo "MODULES=list   # see hooks/linebridge-raspi-modules" \
            > "$root/etc/initramfs-tools/conf.d/linebridge-modules.conf"
    else
        echo "MODULES=most" > "$root/etc/initramfs-tools/conf.d/linebridge-modules.conf"
    fi
}

customize() {
    overlay .
    # tar's umask handling: make the scripts executable whatever the umask was
    chmod 0755 "$root"/usr/libexec/linebridge/* "$root"/etc/initramfs-tools/hooks/* \
        "$root"/etc/initramfs-tools/scripts/local-bottom/*

    # -- the units from systemd/, at their image paths (systemd/README.md) -----------------
    install -D -m 0644 "$LB_REPO/systemd/linebridge.service" "$root/usr/lib/systemd/system/linebridge.service"
    install -D -m 0644 "$LB_REPO/systemd/linebridge.sysusers" "$root/usr/lib/sysusers.d/linebridge.conf"
    install -D -m 0644 "$LB_REPO/systemd/linebridge.tmpfiles" "$root/usr/lib/tmpfiles.d/linebridge.conf"
    install -D -m 0644 "$LB_REPO/systemd/journald-linebridge.conf" \
        "$root/usr/lib/systemd/journald.conf.d/linebridge.conf"
    # users exist on the read-only root from the start (sysusers at boot could not write /etc)
    in_root systemd-sysusers

    # -- /opt/linebridge/venv: the wheel and its dependencies from PyPI ----------------------
    local resolv_saved=""
    if [ -L "$root/etc/resolv.conf" ] || [ ! -s "$root/etc/resolv.conf" ]; then
        resolv_saved=$(readlink "$root/etc/resolv.conf" || true)
        rm -f "$root/etc/resolv.conf"
        cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    fi
    mkdir -p "$root/tmp/lb-wheel" "$root/var/cache/lb-pip"
    cp "$LB_WHEEL" "$root/tmp/lb-wheel/"
    # pip trusts what the build host trusts (a site's TLS-inspecting proxy has its CA there)
    cp -L "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/tmp/lb-wheel/host-ca.crt"
    if [ -n "${LB_PIP_CACHE:-}" ] && [ -d "$LB_PIP_CACHE" ]; then
        cp -a "$LB_PIP_CACHE/." "$root/var/cache/lb-pip/"
    fi
    in_root python3 -m venv /opt/linebridge/venv
    in_root /opt/linebridge/venv/bin/python -m pip install --no-input --disable-pip-version-check \
        --progress-bar off --cache-dir /var/cache/lb-pip --cert /tmp/lb-wheel/host-ca.crt \
        "/tmp/lb-wheel/$(basename "$LB_WHEEL")[all]"   # the appliance carries every driver, sink and the console
    in_root /opt/linebridge/venv/bin/python -m pip freeze --all --disable-pip-version-check \
        > "$LB_WORK/python-packages.txt"
    if [ -n "${LB_PIP_CACHE:-}" ]; then
        mkdir -p "$LB_PIP_CACHE"
        cp -a "$root/var/cache/lb-pip/." "$LB_PIP_CACHE/"
    fi
    rm -rf "$root/tmp/lb-wheel" "$root/var/cache/lb-pip" "$root/root/.cache"
    rm -f "$root/etc/resolv.conf"
    if [ -n "$resolv_saved" ]; then
        ln -s "$resolv_saved" "$root/etc/resolv.conf"
    else
        ln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
    fi

    # the installed gateway accepts the first-boot configuration (and imports at all)
    sed "s/@GATEWAY_ID@/linebridge-000000/" "$root/usr/share/linebridge/linebridge.toml.in" \
        > "$root/tmp/lb-check.toml"
    in_root /opt/linebridge/venv/bin/linebridge check-config /tmp/lb-check.toml
    rm -f "$root/tmp/lb-check.toml"

    # -- the read-only root's writable places: links into the data partition ----------------
    rm -rf "$root/etc/linebridge"
    ln -s /var/lib/linebridge/config "$root/etc/linebridge"
    mkdir -p "$root/etc/systemd/timesyncd.conf.d" "$root/etc/issue.d"
    ln -sfn /var/lib/linebridge/config/timesyncd.conf "$root/etc/systemd/timesyncd.conf.d/linebridge.conf"
    ln -sfn /run/linebridge/issue "$root/etc/issue.d/linebridge.issue"
    # mount points; LogsDirectory= and StateDirectory= find them with the right owner and
    # mode, so systemd has nothing to create or chown on the read-only root
    in_root install -d -m 0750 -o linebridge -g linebridge /var/lib/linebridge /var/log/linebridge
    in_root install -d -m 0755 -o systemd-timesync -g systemd-timesync /var/lib/systemd/timesync
    # other StateDirectory= of Debian's units (logind refuses to start without its own)
    install -d -m 0755 "$root/var/lib/systemd/linger" "$root/var/lib/systemd/backlight" "$root/var/lib/systemd/rfkill"
    if [ "$LB_ARCH" = arm64 ]; then
        esp_mount=/boot/firmware esp_opts="ro,nofail,umask=0022"
    else
        esp_mount=/boot/efi esp_opts="ro,nofail,umask=0077"
    fi
    mkdir -p "$root$esp_mount"

    cat > "$root/etc/fstab" <<EOF
# Linebridge image. / is mounted read-only by the initramfs (root=PARTUUID=... ro on the
# kernel command line) and has no line here. Everything that changes is on the data
# partition (label LBDATA), grown to the end of the disk on the first boot.
# <file system>                        <mount point>              <type> <options>                                              <dump> <pass>
LABEL=LBBOOT                           $esp_mount             vfat   $esp_opts,x-systemd.device-timeout=30s           0 0
LABEL=LBDATA                           /var/lib/linebridge        ext4   noatime,nosuid,nodev,nofail,x-systemd.growfs,x-systemd.device-timeout=60s 0 2
/var/lib/linebridge/.system/journal    /var/log/journal           none   bind,nofail,x-systemd.requires=linebridge-data.service 0 0
/var/lib/linebridge/.system/timesync   /var/lib/systemd/timesync  none   bind,nofail,x-systemd.requires=linebridge-data.service 0 0
tmpfs                                  /tmp                       tmpfs  mode=1777,nosuid,nodev,size=20%                     0 0
tmpfs                                  /var/tmp                   tmpfs  mode=1777,nosuid,nodev,size=10%                     0 0
EOF

    # host name: set at boot from the data partition (linebridge-data.service)
    rm -f "$root/etc/hostname"
    cat > "$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
    : > "$root/etc/machine-id"

    # -- units ---------------------------------------------------------------------------
    in_root systemctl enable linebridge.service linebridge-growdata.service linebridge-data.service \
        linebridge-banner.service linebridge-banner.path linebridge-selftest.service \
        linebridge-system.service linebridge-system.path \
        systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
    # SSH: off until an admin sets a key in the web console (linebridge-system.service starts
    # it); no host keys in the image: every device makes its own (etc/ssh/sshd_config.d)
    in_root systemctl disable ssh.service
    rm -f "$root"/etc/ssh/ssh_host_*
    # nothing to update in place on a read-only root (a new image replaces it)
    in_root systemctl disable apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer e2scrub_reap.service
    in_root systemctl mask systemd-firstboot.service

    if [ "$LB_ARCH" = arm64 ]; then
        raspi_boot
    fi
}

# Debian's raspi-firmware fills /boot/firmware (firmware, device trees, kernel, initrd,
# config.txt, cmdline.txt) from its kernel hook; run it again with our root and consoles
raspi_boot() {
    : "${LB_ROOT_PARTUUID:?}"
    cat >> "$root/etc/default/raspi-firmware" <<EOF

# -- Linebridge image --------------------------------------------------------------
# root by PARTUUID (slot A of the A/B layout), read-only (cmdline.txt's rw made ro);
# HDMI last, so /dev/console (systemd's messages) is the screen
ROOTPART="PARTUUID=$LB_ROOT_PARTUUID"
CONSOLES="ttyS1,115200 tty0"
# no cma= on the command line: the hook would add cma=64M when not run on a Pi 4, which
# Debian warns makes a Pi 4 unbootable; the device tree's CMA pool is used instead
CMA=0
EOF
    in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
    sed -i -e 's/ rw / ro /' -e 's/  */ /g' -e 's/^ //' -e 's/ $//' "$root/boot/firmware/cmdline.txt"
    grep -q ' ro ' "$root/boot/firmware/cmdline.txt"
}

case $phase in
essential) essential ;;
customize) customize ;;
*) echo "hooks.sh: unknown phase $phase" >&2; exit 2 ;;
esac
