"""The flashable image: built for both architectures, inspected, and the x86-64 one booted.

`image/build.sh` runs once per architecture for the whole module (both in parallel,
into a temporary directory; Debian packages and PyPI downloads are cached between
runs in /var/cache/linebridge-image). The images are then read without mounting
anything: the partition table with `sfdisk --json`, the FAT boot partition with
mtools at its offset, the ext4 root with debugfs. Finally `image/test-boot.sh` boots
the x86-64 image in QEMU (OVMF with Secure Boot enforced, KVM or TCG) and checks the
setup page, the self-test line, the watchdog restart, what survives a reboot and the
System page's NTP and SSH settings; the arm64 image is booted too, on QEMU's Raspberry
Pi 3B model, with the same checks but the reboot.

Set LINEBRIDGE_IMAGE_DIR to a directory that already holds both images (from
`image/build.sh --out DIR`) to test those instead of building.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image" / "build.sh"
TEST_BOOT = REPO / "image" / "test-boot.sh"
VERSION = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
ARCHES = ("amd64", "arm64")
TOOLS = ("mmdebstrap", "sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "mtype", "debugfs", "xz",
         "qemu-system-x86_64", "qemu-system-aarch64", "qemu-img", "curl", "ssh", "ssh-keygen")
#: generous: measured 2.5 min (amd64) and about 6 min (arm64, under qemu-user) on 2 cores
BUILD_TIMEOUT = 40 * 60
BOOT_TIMEOUT = 15 * 60

ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_X86_64_GUID = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
LINUX_DATA_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="building an image needs root (mmdebstrap, chroot)"),
    pytest.mark.skipif(bool(missing), reason=f"missing {', '.join(missing)} (bash tests/setup.sh installs them)"),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """arch -> the raw image; both built once for the module (in parallel)."""
    given = os.environ.get("LINEBRIDGE_IMAGE_DIR")
    out = Path(given) if given else tmp_path_factory.mktemp("images")
    paths = {arch: out / f"linebridge-{VERSION}-{arch}.img" for arch in ARCHES}
    if given:
        for p in paths.values():
            assert p.exists(), f"LINEBRIDGE_IMAGE_DIR has no {p.name}"
        return paths
    started = time.monotonic()
    procs = {arch: subprocess.Popen([str(BUILD), "--arch", arch, "--out", str(out)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for arch in ARCHES}
    logs = {}
    for arch, proc in procs.items():
        try:
            logs[arch], _ = proc.communicate(timeout=BUILD_TIMEOUT - (time.monotonic() - started))
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            pytest.fail(f"image/build.sh --arch {arch} took more than {BUILD_TIMEOUT} s")
    for arch, proc in procs.items():
        assert proc.returncode == 0, f"image/build.sh --arch {arch} failed:\n{logs[arch][-6000:]}"
    for arch in ARCHES:  # what was built and how long it took, for the test log (-rA / -s)
        print((out / f"linebridge-{VERSION}-{arch}.build.txt").read_text())
    print(f"both images built in {time.monotonic() - started:.0f} s (in parallel)")
    return paths


def partitions(img: Path) -> tuple[str, list[dict]]:
    table = json.loads(subprocess.run(["sfdisk", "--json", str(img)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    return table["label"], table["partitions"]


def fat_read(img: Path, part: dict, path: str) -> bytes:
    """A file from the FAT partition `part` of `img`, read with mtools at its offset."""
    out = subprocess.run(["mtype", "-i", f"{img}@@{part['start'] * 512}", f"::{path}"],
                         capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert out.returncode == 0, f"{path} is not on the boot partition: {out.stderr.decode()}"
    return out.stdout


def fat_list(img: Path, part: dict, path: str = "/") -> set[str]:
    out = subprocess.run(["mdir", "-b", "-i", f"{img}@@{part['start'] * 512}", f"::{path}"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    return {line.rstrip("/").rsplit("/", 1)[-1] for line in out.stdout.split()}


@pytest.fixture(scope="module")
def root_fs(images, tmp_path_factory):
    """arch -> a debugfs runner on a copy of the image's root partition (slot A)."""
    runners = {}
    for arch, img in images.items():
        _, parts = partitions(img)
        root = parts[1]
        copy = tmp_path_factory.mktemp(f"root-{arch}") / "root.img"
        subprocess.run(["dd", f"if={img}", f"of={copy}", "bs=512", f"skip={root['start']}",
                        f"count={root['size']}", "conv=sparse", "iflag=fullblock", "status=none"], check=True)

        def run(request: str, copy: Path = copy) -> str:
            out = subprocess.run(["debugfs", "-R", request, str(copy)], capture_output=True, text=True)
            return out.stdout

        runners[arch] = run
    return runners


# -- what build.sh writes beside the image ---------------------------------------------------

@pytest.mark.parametrize("arch", ARCHES)
def test_the_build_writes_the_image_its_compressed_copy_checksums_and_lists(images, arch):
    img = images[arch]
    out = img.parent
    name = img.name[:-len(".img")]
    xz = out / f"{img.name}.xz"
    assert img.stat().st_size > 1 << 30 and xz.exists()
    check = subprocess.run(["sha256sum", "-c", f"{img.name}.sha256"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 2, check.stdout + check.stderr
    packages = dict(line.split("\t")[:2] for line in (out / f"{name}.packages.txt").read_text().splitlines())
    for pkg in ("systemd", "systemd-timesyncd", "python3", "initramfs-tools", "ca-certificates"):
        assert pkg in packages, pkg
    assert any(p.startswith("linux-image-") for p in packages)
    assert "openssh-server" in packages          # off until an admin sets a key (checked below)
    wheel_hash, wheel_name = (out / f"{name}.wheel.sha256").read_text().split()
    assert wheel_name == f"linebridge-{VERSION}-py3-none-any.whl"
    assert subprocess.run(["sha256sum", str(out / wheel_name)], capture_output=True, text=True,
                          check=True).stdout.split()[0] == wheel_hash
    python = (out / f"{name}.python.txt").read_text()
    assert "linebridge @ file://" in python or f"linebridge=={VERSION}" in python
    for dep in ("pymodbus", "asyncua", "cryptography", "lmdb", "flask", "cheroot"):
        assert re.search(rf"^{dep}==", python, re.M | re.I), dep


# -- partition tables --------------------------------------------------------------------------

def test_amd64_disk_is_gpt_with_esp_two_root_slots_and_the_data_partition_last(images):
    label, parts = partitions(images["amd64"])
    assert label == "gpt"
    assert [p.get("name") for p in parts] == ["esp", "root-a", "root-b", "data"]
    assert [p["type"] for p in parts] == [ESP_GUID, ROOT_X86_64_GUID, ROOT_X86_64_GUID, LINUX_DATA_GUID]
    assert parts[1]["size"] == parts[2]["size"]           # room for an A/B update
    assert all(p["start"] % 2048 == 0 for p in parts)     # MiB-aligned
    assert parts[3]["start"] > parts[2]["start"] > parts[1]["start"] > parts[0]["start"]


def test_arm64_disk_is_mbr_with_a_fat_boot_partition_first(images):
    label, parts = partitions(images["arm64"])
    assert label == "dos"                                 # what every Pi's boot ROM / EEPROM reads
    assert [p["type"] for p in parts] == ["c", "83", "83", "83"]
    assert parts[0].get("bootable") is True
    assert parts[1]["size"] == parts[2]["size"]


# -- boot partitions ------------------------------------------------------------------------------

def test_amd64_boot_partition_has_shim_grub_and_slot_a_kernel(images):
    img = images["amd64"]
    _, parts = partitions(img)
    esp = parts[0]
    assert {"BOOTX64.EFI", "grubx64.efi", "mmx64.efi"} <= fat_list(img, esp, "/EFI/BOOT")
    assert {"vmlinuz", "initrd.img"} <= fat_list(img, esp, "/linebridge/a")
    cfg = fat_read(img, esp, "/EFI/debian/grub.cfg").decode()
    root_uuid = parts[1]["uuid"].lower()
    assert f"root=PARTUUID={root_uuid} ro " in cfg
    assert "console=ttyS0,115200" in cfg and "linux /linebridge/a/vmlinuz" in cfg


def test_arm64_boot_partition_has_what_a_raspberry_pi_needs(images):
    img = images["arm64"]
    label, parts = partitions(img)
    boot = parts[0]
    files = fat_list(img, boot)
    # firmware (raspi-firmware): Pi 4 and Pi 3 boot loaders
    assert {"start4.elf", "fixup4.dat", "bootcode.bin", "start.elf", "fixup.dat"} <= files, sorted(files)
    # device trees (linux-image-arm64): Pi 4 / 400 / CM4, Pi 3
    assert {"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb",
            "bcm2837-rpi-3-b-plus.dtb"} <= files, sorted(files)
    config = fat_read(img, boot, "/config.txt").decode()
    assert "arm_64bit=1" in config and "upstream_kernel=1" in config
    kernel = re.search(r"^kernel=(\S+)", config, re.M).group(1)
    initramfs = re.search(r"^initramfs (\S+)", config, re.M).group(1)
    assert {kernel, initramfs} <= files, (kernel, initramfs, sorted(files))
    assert len(fat_read(img, boot, f"/{kernel}")) > 10 << 20
    assert len(fat_read(img, boot, f"/{initramfs}")) > 1 << 20
    cmdline = fat_read(img, boot, "/cmdline.txt").decode().split()
    disk_id = json.loads(subprocess.run(["sfdisk", "--json", str(img)], capture_output=True, text=True,
                                        check=True).stdout)["partitiontable"]["id"].removeprefix("0x")
    assert f"root=PARTUUID={disk_id}-02" in cmdline
    assert "ro" in cmdline and "rw" not in cmdline
    assert "console=tty0" in cmdline


# -- the root file system ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHES)
def test_root_filesystem_has_the_gateway_enabled_and_its_writable_places_on_the_data_partition(root_fs, arch):
    fs = root_fs[arch]
    assert "Type: regular" in fs("stat /opt/linebridge/venv/bin/linebridge")
    assert "Fast link dest: \"/var/lib/linebridge/config\"" in fs("stat /etc/linebridge")
    wants = fs("ls -l /etc/systemd/system/multi-user.target.wants")
    for unit in ("linebridge.service", "linebridge-banner.service", "linebridge-selftest.service",
                 "systemd-networkd.service"):
        assert unit in wants, unit
    assert "systemd-timesyncd.service" in fs("ls -l /etc/systemd/system/sysinit.target.wants")
    assert "linebridge-data.service" in fs("ls -l /etc/systemd/system/local-fs.target.wants")
    fstab = fs("cat /etc/fstab")
    assert re.search(r"^LABEL=LBDATA\s+/var/lib/linebridge\s+ext4\s+\S*x-systemd\.growfs", fstab, re.M)
    assert re.search(r"^/var/lib/linebridge/\.system/journal\s+/var/log/journal\s+none\s+bind", fstab, re.M)
    assert "/var/lib/linebridge/config/timesyncd.conf" in fs("stat /etc/systemd/timesyncd.conf.d/linebridge.conf")
    assert "SystemMaxUse=64M" in fs("cat /usr/lib/systemd/journald.conf.d/linebridge.conf")
    assert "WatchdogSec=30" in fs("cat /usr/lib/systemd/system/linebridge.service")
    # no password anywhere; SSH off (not enabled, no host keys shipped), keys only when on
    shadow = fs("cat /etc/shadow")
    assert re.search(r"^root:[*!]", shadow, re.M), shadow.splitlines()[:1]
    assert not re.search(r"^\w+:\$", shadow, re.M)       # no account has a password hash
    assert "ssh.service" not in wants and "sshd.service" not in fs("ls -l /etc/systemd/system")
    assert "ssh_host_" not in fs("ls -l /etc/ssh")
    sshd = fs("cat /etc/ssh/sshd_config.d/linebridge.conf")
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
                 "AuthorizedKeysFile /run/linebridge-ssh/authorized_keys"):
        assert line in sshd, line
    for unit in ("linebridge-system.service", "linebridge-system.path"):
        assert unit in wants, unit
    assert fs("cat /etc/machine-id").strip() == ""       # made on the first boot, kept on the data partition
    passwd = fs("cat /etc/passwd")
    assert re.search(r"^linebridge:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)


# -- booting ------------------------------------------------------------------------------------

def test_amd64_image_boots_to_the_setup_page_restarts_a_stalled_gateway_and_keeps_its_state(images):
    started = time.monotonic()
    out = subprocess.run([str(TEST_BOOT), str(images["amd64"]), "--secure-boot", "--reboot"],
                         capture_output=True, text=True, errors="replace",
                         timeout=BOOT_TIMEOUT)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout
    for check in ("setup page answered over HTTPS", "rootfs=ro data=/var/lib/linebridge",
                  "watchdog=restarted", "boots=2", "ntp=ntp.linebridge.test,192.0.2.123",
                  "an empty key list turned SSH off"):
        assert check in out.stdout, check
    print(f"test-boot.sh took {time.monotonic() - started:.0f} s")


def test_arm64_image_boots_on_qemus_raspberry_pi_3b_to_the_setup_page(images):
    out = subprocess.run([str(TEST_BOOT), str(images["arm64"])], capture_output=True, text=True,
                         errors="replace", timeout=BOOT_TIMEOUT)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    for check in ("setup page answered over HTTPS", "rootfs=ro data=/var/lib/linebridge", "watchdog=restarted",
                  "ntp=ntp.linebridge.test,192.0.2.123", "an empty key list turned SSH off"):
        assert check in out.stdout, check
