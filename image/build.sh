#!/usr/bin/env bash
# Builds the flashable Linebridge image: Debian 12 (bookworm) with the gateway from this
# checkout installed in /opt/linebridge/venv and enabled, a read-only root and a data
# partition. See image/README.md.
#
#   image/build.sh --arch amd64|arm64 --out DIR [--cache DIR] [--compress xz|zst|none]
#                  [--root-size MiB] [--initramfs-modules list|most] [--mirror URL] [--keep-work]
#
# Writes DIR/linebridge-<version>-<arch>.img (raw disk with a partition table), the
# compressed copy (.img.xz by default), .img.sha256 (sha256sum format, both files),
# .packages.txt (dpkg-query: every Debian package and version), .python.txt (pip freeze
# of the venv), the wheel and .wheel.sha256, and .build.txt (what was built and how long
# each step took). Needs root (mmdebstrap's root mode, chroot, files owned by the
# image's users), mmdebstrap, sfdisk, mkfs.ext4, mkfs.vfat, mtools, and for arm64 on
# another architecture qemu-user-static with binfmt_misc (mounted and enabled here if
# needed). No loop devices: the partitions are made as files (mkfs.ext4 -d, mkfs.vfat +
# mcopy) and copied into the image at the offsets of the partition table.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security

arch="" out="" cache="${LINEBRIDGE_IMAGE_CACHE:-/var/cache/linebridge-image}" compress=xz keep_work=0
initramfs_modules=list   # arm64: the Pi's storage drivers (MODULES=most: ~20 min more under qemu-user)
root_mib=1536      # one root slot; a second one of the same size is reserved for A/B updates
esp_mib=256        # kernel + initrd of both slots, firmware (Pi), shim + GRUB (x86-64)
data_mib=256       # flashed size; grown to the end of the disk on the first boot
first_mib=4        # first partition at 4 MiB: aligned to SD cards' erase blocks

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
    --arch) arch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    --root-size) root_mib=$2; shift 2 ;;
    --initramfs-modules) initramfs_modules=$2; shift 2 ;;
    --mirror) MIRROR=$2; shift 2 ;;
    --keep-work) keep_work=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
case $arch in amd64|arm64) ;; *) echo "build.sh: --arch amd64|arm64 is required" >&2; exit 2 ;; esac
[ -n "$out" ] || { echo "build.sh: --out DIR is required" >&2; exit 2; }
case $compress in xz|zst|none) ;; *) echo "build.sh: --compress xz|zst|none" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root (mmdebstrap root mode, chroot)" >&2; exit 1; }

for tool in mmdebstrap sfdisk mkfs.ext4 e2fsck mkfs.vfat mcopy mdir sha256sum; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (bash tests/setup.sh installs it)" >&2; exit 1; }
done
[ "$compress" = none ] || command -v "$compress" >/dev/null || command -v "${compress/zst/zstd}" >/dev/null \
    || { echo "build.sh: $compress is missing" >&2; exit 1; }

t_start=$(date +%s)
t_last=$t_start
timings=()
step() {  # step NAME: records how long the previous step took
    local now; now=$(date +%s)
    [ -z "${step_name:-}" ] || timings+=("$step_name $((now - t_last))s")
    step_name=$1; t_last=$now
    echo "build.sh [$arch] $(date +%H:%M:%S) $1" >&2
}

mkdir -p "$out" "$cache/apt-$arch" "$cache/pip-$arch"
out=$(cd "$out" && pwd)
cache=$(cd "$cache" && pwd)
work=$(mktemp -d "$out/.work-$arch.XXXXXX")
cleanup() {
    if [ "$keep_work" = 1 ]; then echo "build.sh: work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# -- foreign architecture: qemu-user through binfmt_misc --------------------------------
host_arch=$(dpkg --print-architecture)
if [ "$arch" != "$host_arch" ]; then
    step binfmt
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    qemu_name=$( [ "$arch" = arm64 ] && echo qemu-aarch64 || echo qemu-x86_64 )
    if [ ! -e "/proc/sys/fs/binfmt_misc/$qemu_name" ]; then
        command -v update-binfmts >/dev/null || { echo "build.sh: binfmt-support and qemu-user-static are needed for $arch" >&2; exit 1; }
        update-binfmts --enable "$qemu_name"
    fi
    if command -v arch-test >/dev/null && ! arch-test "$arch" >/dev/null; then
        echo "build.sh: this machine cannot run $arch binaries (qemu-user-static, binfmt_misc)" >&2; exit 1
    fi
fi

# -- the wheel, from the checkout as it is ----------------------------------------------
step wheel
version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")
name="linebridge-$version-$arch"
src="$work/src"
mkdir -p "$src"
# a copy of the tracked and new (not ignored) files: the build leaves nothing in the checkout
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$src" -xf -
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
    commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
    dirty=$([ -z "$(git -C "$REPO" status --porcelain 2>/dev/null)" ] || echo " (with uncommitted changes)")
else
    tar -C "$REPO" --exclude=.venv --exclude=.git -cf - . | tar -C "$src" -xf -
    SOURCE_DATE_EPOCH=$(date +%s) commit=unknown dirty=""
fi
export SOURCE_DATE_EPOCH
"${PYTHON:-python3}" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$work/wheel" "$src"
wheel=$(ls "$work"/wheel/linebridge-*.whl)

# -- the root file system ---------------------------------------------------------------
step mmdebstrap
root_uuid=$(cat /proc/sys/kernel/random/uuid)
if [ "$arch" = arm64 ]; then
    disk_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
    root_partuuid="$disk_id-02"
    components=main,non-free-firmware
    packages=(linux-image-arm64 raspi-firmware)
else
    root_partuuid=$root_uuid
    components=main
    packages=(linux-image-amd64 grub-efi-amd64-signed shim-signed)
fi
packages+=(systemd systemd-sysv systemd-timesyncd systemd-resolved libnss-myhostname udev dbus
           initramfs-tools kmod iproute2 netbase ca-certificates python3 python3-venv
           cloud-guest-utils fdisk e2fsprogs zstd openssh-server)
export LB_IMAGE="$HERE" LB_REPO="$src" LB_ARCH="$arch" LB_WHEEL="$wheel" LB_WORK="$work" \
       LB_PIP_CACHE="$cache/pip-$arch" LB_ROOT_PARTUUID="$root_partuuid" LB_INITRAMFS_MODULES="$initramfs_modules"
rootfs="$work/rootfs"
# apt's downloads are kept in the cache (synced in before, out after the install)
mmdebstrap --variant=apt --arch="$arch" --components="$components" \
    --aptopt='Apt::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$cache/apt-$arch' /var/cache/apt/archives/" \
    --essential-hook='"$LB_IMAGE"/lib/hooks.sh essential "$1"' \
    --customize-hook='"$LB_IMAGE"/lib/hooks.sh customize "$1"' \
    --customize-hook="sync-out /var/cache/apt/archives '$cache/apt-$arch'" \
    "$SUITE" "$rootfs" \
    "deb $MIRROR $SUITE ${components//,/ }" \
    "deb $MIRROR $SUITE-updates ${components//,/ }" \
    "deb $SECURITY $SUITE-security ${components//,/ }" \
    > "$work/mmdebstrap.log" 2>&1 || { tail -n 60 "$work/mmdebstrap.log" >&2; echo "build.sh: mmdebstrap failed (log: $work/mmdebstrap.log)" >&2; keep_work=1; exit 1; }
# mmdebstrap's own apt cache files are not packages
rm -f "$cache/apt-$arch/lock" "$cache/apt-$arch"/partial/* 2>/dev/null || true

dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Package}\t${Version}\t${Architecture}\n' \
    | sort > "$out/$name.packages.txt"
kernel_version=$(ls "$rootfs"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' | sort -V | tail -n 1)

# -- the boot partition's content -------------------------------------------------------
step boot-files
esp="$work/esp"
mkdir -p "$esp"
if [ "$arch" = amd64 ]; then
    # shim (signed by Microsoft's UEFI CA) loads Debian's signed GRUB, which loads Debian's
    # signed kernel: boots with Secure Boot on or off, from the removable-media path, so no
    # firmware boot entry is needed
    mkdir -p "$esp/EFI/BOOT" "$esp/EFI/debian" "$esp/linebridge/a"
    cp "$rootfs/usr/lib/shim/shimx64.efi.signed" "$esp/EFI/BOOT/BOOTX64.EFI"
    cp "$rootfs/usr/lib/shim/mmx64.efi.signed" "$esp/EFI/BOOT/mmx64.efi"
    cp "$rootfs/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" "$esp/EFI/BOOT/grubx64.efi"
    cp "$rootfs/boot/vmlinuz-$kernel_version" "$esp/linebridge/a/vmlinuz"
    cp "$rootfs/boot/initrd.img-$kernel_version" "$esp/linebridge/a/initrd.img"
    sed -e "s/@ROOT_PARTUUID@/$root_partuuid/" -e "s/@VERSION@/$version/" -e "s/@KERNEL@/$kernel_version/" \
        "$HERE/boot/grub.cfg.in" > "$esp/EFI/debian/grub.cfg"   # the signed GRUB's $prefix
else
    cp -a "$rootfs/boot/firmware/." "$esp/"
    find "$rootfs/boot/firmware" -mindepth 1 -delete
fi

# -- partitions as files, then the disk -------------------------------------------------
step partitions
mib=$((1024 * 1024))
esp_start=$first_mib
root_a_start=$((esp_start + esp_mib))
root_b_start=$((root_a_start + root_mib))
data_start=$((root_b_start + root_mib))
disk_mib=$((data_start + data_mib + 1))   # + the GPT's backup header

# root: the whole tree but the mount points' contents; no journal (never written in place)
rm -rf "${rootfs:?}"/tmp/* "${rootfs:?}"/var/tmp/* "${rootfs:?}/var/lib/linebridge/"*
mkfs.ext4 -q -F -L lbroot-a -U "$root_uuid" -m 0 -O ^has_journal -E root_owner=0:0 \
    -d "$rootfs" "$work/root.img" "${root_mib}M" >"$work/mkfs-root.log" 2>&1 \
    || { cat "$work/mkfs-root.log" >&2; echo "build.sh: the root file system does not fit in ${root_mib} MiB (--root-size)" >&2; exit 1; }
e2fsck -fn "$work/root.img" >/dev/null 2>&1 || { echo "build.sh: e2fsck finds errors in the root file system" >&2; exit 1; }
root_used=$(du -sm --apparent-size "$rootfs" | cut -f1)

# data: empty; linebridge-data.service lays it out on the first boot
mkdir -p "$work/data"
mkfs.ext4 -q -F -L LBDATA -m 0 -E root_owner=0:0 -d "$work/data" "$work/data.img" "${data_mib}M" >/dev/null 2>&1

# boot: FAT32
rm -f "$work/esp.img"
mkfs.vfat -F 32 -n LBBOOT -C "$work/esp.img" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -s -Q -m -i "$work/esp.img" "$esp"/* ::/
esp_used=$(du -sm "$esp" | cut -f1)

step disk
img="$out/$name.img"
rm -f "$img"
truncate -s "${disk_mib}M" "$img"
s=$((mib / 512))
if [ "$arch" = amd64 ]; then
    sfdisk --quiet "$img" <<EOF
label: gpt
unit: sectors
first-lba: 2048
start=$((esp_start * s)), size=$((esp_mib * s)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="esp"
start=$((root_a_start * s)), size=$((root_mib * s)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_partuuid, name="root-a"
start=$((root_b_start * s)), size=$((root_mib * s)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root-b"
start=$((data_start * s)), size=$((data_mib * s)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
EOF
else
    # MBR: what every Raspberry Pi's boot ROM / EEPROM reads; 4 primary partitions
    sfdisk --quiet "$img" <<EOF
label: dos
label-id: 0x$disk_id
unit: sectors
start=$((esp_start * s)), size=$((esp_mib * s)), type=c, bootable
start=$((root_a_start * s)), size=$((root_mib * s)), type=83
start=$((root_b_start * s)), size=$((root_mib * s)), type=83
start=$((data_start * s)), size=$((data_mib * s)), type=83
EOF
fi
put() { dd if="$1" of="$img" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$work/esp.img" "$esp_start"
put "$work/root.img" "$root_a_start"
put "$work/data.img" "$data_start"
sfdisk --dump "$img" > "$work/partitions.txt"

# -- beside the image: compressed copy, checksums, package lists ------------------------
step compress
rm -f "$img.xz" "$img.zst"
case $compress in
xz) xz -T0 -1 -k -f "$img"; packed="$img.xz" ;;   # -1: 35 s, 240 MB; -3 takes twice as long for 10 % less
zst) zstd -T0 -10 -q -f --sparse "$img" -o "$img.zst"; packed="$img.zst" ;;
none) packed="" ;;
esac
step checksums
(cd "$out" && sha256sum "$name.img" ${packed:+"$(basename "$packed")"} > "$name.img.sha256")
cp "$work/python-packages.txt" "$out/$name.python.txt"
cp "$wheel" "$out/"
(cd "$(dirname "$wheel")" && sha256sum "$(basename "$wheel")") > "$out/$name.wheel.sha256"
step finished

{
    echo "image: $name.img ($disk_mib MiB raw, $(du -m "$img" | cut -f1) MiB allocated)"
    [ -z "$packed" ] || echo "compressed: $(basename "$packed") ($(du -m "$packed" | cut -f1) MiB)"
    echo "source: $commit$dirty"
    echo "wheel: $(cat "$out/$name.wheel.sha256")"
    echo "debian: $SUITE $arch, kernel $kernel_version, $(wc -l < "$out/$name.packages.txt") packages"
    echo "root file system: $root_used MiB of the ${root_mib} MiB slot; boot partition: $esp_used MiB of $esp_mib MiB"
    echo "root PARTUUID: $root_partuuid"
    echo "partitions:"; sed -n '/^[^ ]*img[0-9]/p' "$work/partitions.txt" | sed 's/^/  /'
    echo "build time: $(( $(date +%s) - t_start ))s (${timings[*]})"
} | tee "$out/$name.build.txt" >&2
