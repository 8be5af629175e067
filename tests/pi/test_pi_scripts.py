"""Tests of the Raspberry Pi tooling in pi/ (resize-image.sh, extract-boot.sh,
run-qemu.sh, build-test-image.sh, test-emulated.sh) and of the Dockerfiles.

The fast tests build small synthetic SD card images (MBR, FAT boot partition,
ext4 root with a few files; a few MiB) in tmp_path; no root needed.  Tests
that need QEMU, root and the big cached rootfs are marked `emulation`.
Every test skips, naming the Debian package, when a tool it needs is missing.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PI = REPO / "pi"
MIB = 1024 * 1024

TOOLS = {  # command -> Debian package
    "sfdisk": "fdisk", "mkfs.vfat": "dosfstools", "mcopy": "mtools", "mdir": "mtools",
    "mtype": "mtools", "mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs", "e2fsck": "e2fsprogs",
    "resize2fs": "e2fsprogs", "dumpe2fs": "e2fsprogs", "openssl": "openssl", "xz": "xz-utils",
    "shellcheck": "shellcheck", "fuser": "psmisc", "bash": "bash",
    "qemu-system-aarch64": "qemu-system-arm", "qemu-system-arm": "qemu-system-arm",
    "mmdebstrap": "mmdebstrap", "qemu-aarch64-static": "qemu-user-static",
}
IMAGE_TOOLS = ("bash", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "e2fsck",
               "resize2fs", "dumpe2fs")


def which(tool):
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def need(*tools):
    missing = [t for t in tools if not which(t)]
    if missing:
        pkgs = sorted({TOOLS.get(t, t) for t in missing})
        pytest.skip(f"missing {', '.join(missing)} (apt-get install {' '.join(pkgs)})")


def env():
    e = dict(os.environ)
    e["PATH"] = e.get("PATH", "") + ":/usr/sbin:/sbin"
    return e


def run(*args, check=False, timeout=300, input=None):
    """Run a pi/ script (name relative to pi/) or any command; returns CompletedProcess."""
    args = [str(a) for a in args]
    if (PI / args[0]).exists():
        args[0] = str(PI / args[0])
    r = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=env(), input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def table(path):
    out = run("sfdisk", "--json", path, check=True).stdout
    return json.loads(out)["partitiontable"]


def read_range(path, start, size):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)


def ext4_file(img, part_index, name, tmp_path):
    """Contents of file `name` in the ext4 filesystem of partition `part_index` (0-based)."""
    p = table(img)["partitions"][part_index]
    fs = tmp_path / f"part{part_index}-{time.monotonic_ns()}.ext4"
    fs.write_bytes(read_range(img, p["start"] * 512, p["size"] * 512))
    r = subprocess.run(["debugfs", "-R", f"cat {name}", str(fs)], capture_output=True, env=env())
    check = run("e2fsck", "-f", "-n", fs)
    fs.unlink()
    assert check.returncode == 0, check.stdout + check.stderr
    return r.stdout


def fat_files(img, part_index):
    p = table(img)["partitions"][part_index]
    r = run("mdir", "-b", "-i", f"{img}@@{p['start'] * 512}", "::/", check=True)
    return sorted(line.removeprefix("::/") for line in r.stdout.split())


BOOT_FILES = {
    "kernel8.img": os.urandom(70_000),
    "kernel7.img": os.urandom(50_000),
    "kernel.img": os.urandom(40_000),
    "bcm2710-rpi-3-b-plus.dtb": b"dtb-3b+",
    "bcm2709-rpi-2-b.dtb": b"dtb-2b",
    "bcm2708-rpi-zero.dtb": b"dtb-0",
    "cmdline.txt": b"console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 "
                   b"fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n",
    "config.txt": b"arm_64bit=1\n",
    "start.elf": b"firmware",
    "fixup.dat": b"fixup",
}
ROOT_FILES = {
    "/etc/hostname": b"raspberrypi\n",
    "/home/pi/data.bin": os.urandom(3 * MIB),
    "/usr/lib/x.py": b"print('hi')\n" * 100,
}


def make_image(tmp_path, name="disk.img", boot_mib=8, root_mib=10, extra=None, tail_kib=0):
    """MBR image: p1 FAT16 boot (BOOT_FILES), p2 ext4 root (ROOT_FILES), and an
    optional third partition `extra` = ("fat"|"ext4", MiB).  `tail_kib` extra
    KiB after the last partition make the size not a multiple of 1 MiB (and
    never a power of two)."""
    need(*IMAGE_TOOLS)
    work = tmp_path / f"build-{name}"
    work.mkdir()
    boot = work / "boot.vfat"
    with open(boot, "wb") as f:
        f.truncate(boot_mib * MIB)
    run("mkfs.vfat", "-F", "16", "-s", "1", "-n", "BOOT", boot, check=True)
    for fname, data in BOOT_FILES.items():
        (work / fname).write_bytes(data)
        run("mcopy", "-i", boot, work / fname, f"::/{fname}", check=True)
    rootdir = work / "root"
    for fname, data in ROOT_FILES.items():
        p = rootdir / fname.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    root = work / "root.ext4"
    run("mkfs.ext4", "-q", "-F", "-d", rootdir, root, f"{root_mib}M", check=True)
    parts = [("c", boot), ("83", root)]
    if extra:
        kind, mib = extra
        x = work / "extra.fs"
        with open(x, "wb") as f:
            f.truncate(mib * MIB)
        if kind == "fat":
            run("mkfs.vfat", "-F", "16", "-s", "1", x, check=True)
            parts.append(("c", x))
        else:
            run("mkfs.ext4", "-q", "-F", x, check=True)
            parts.append(("83", x))
    img = tmp_path / name
    start = 1 * MIB
    script = "label: dos\n"
    layout = []
    for ptype, fs in parts:
        size = fs.stat().st_size
        script += f"start={start // 512}, size={size // 512}, type={ptype}\n"
        layout.append((start, fs))
        start += size
    with open(img, "wb") as f:
        f.truncate(start + tail_kib * 1024)
    run("sfdisk", "-q", img, input=script, check=True)
    with open(img, "r+b") as f:
        for off, fs in layout:
            f.seek(off)
            f.write(fs.read_bytes())
    shutil.rmtree(work)
    return img


def assert_files_intact(img, tmp_path, root_index=1):
    for name, data in ROOT_FILES.items():
        assert ext4_file(img, root_index, name, tmp_path) == data, name


def boot_bytes(img):
    p = table(img)["partitions"][0]
    return read_range(img, p["start"] * 512, p["size"] * 512)


# ------------------------------------------------------------------ general --
SCRIPTS = ["resize-image.sh", "extract-boot.sh", "run-qemu.sh", "build-test-image.sh",
           "build-os-image.sh", "test-emulated.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    need("bash")
    r = run(script, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout and script in r.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_arguments_is_a_usage_error(script):
    need("bash")
    r = run(script)
    assert r.returncode == 2
    assert r.stderr.strip()


def test_scripts_are_strict_bash_sharing_lib():
    for script in SCRIPTS:
        text = (PI / script).read_text()
        assert text.startswith("#!/bin/bash\n"), script
        assert "set -euo pipefail" in text, script
        assert '. "$PI_DIR/lib.sh"' in text, script
        assert os.access(PI / script, os.X_OK), f"{script} is not executable"


def test_shellcheck_clean():
    need("shellcheck")
    files = sorted(str(p) for p in [*PI.glob("*.sh"), *(REPO / "docker").glob("*.sh")])
    r = subprocess.run(["shellcheck", "-x", *files], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------- resize --
def test_resize_absolute_keeps_files_and_boot(tmp_path):
    img = make_image(tmp_path, tail_kib=3)           # 19 MiB + 3 KiB: odd size
    before = sha256(img)
    boot = boot_bytes(img)
    out = tmp_path / "out.img"
    r = run("resize-image.sh", img, "40M", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 40 * MIB
    assert sha256(img) == before, "input modified without --in-place"
    t = table(out)
    last = t["partitions"][-1]
    assert (last["start"] + last["size"]) * 512 == 40 * MIB
    assert boot_bytes(out) == boot
    assert_files_intact(out, tmp_path)
    assert "partition table before" in r.stderr and "partition table after" in r.stderr
    assert r.stdout.strip().endswith(str(out))


def test_resize_relative_default_output(tmp_path):
    img = make_image(tmp_path)
    size = img.stat().st_size
    r = run("resize-image.sh", img, "+5M")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "disk-resized.img"
    assert out.stat().st_size == size + 5 * MIB
    assert_files_intact(out, tmp_path)
    assert boot_bytes(out) == boot_bytes(img)


@pytest.mark.parametrize("size,expected", [("+1M", 32 * MIB), ("33M", 64 * MIB), ("+0", 32 * MIB)])
def test_resize_pow2(tmp_path, size, expected):
    img = make_image(tmp_path, tail_kib=5)
    r = run("resize-image.sh", img, size, "--pow2", "-o", tmp_path / "p.img")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.img").stat().st_size == expected
    assert_files_intact(tmp_path / "p.img", tmp_path)


def test_resize_in_place(tmp_path):
    img = make_image(tmp_path)
    boot = boot_bytes(img)
    r = run("resize-image.sh", img, "24M", "--in-place")
    assert r.returncode == 0, r.stderr
    assert img.stat().st_size == 24 * MIB
    assert boot_bytes(img) == boot
    assert_files_intact(img, tmp_path)
    assert not (tmp_path / "disk-resized.img").exists()


def test_resize_xz_input(tmp_path):
    need("xz")
    img = make_image(tmp_path)
    run("xz", "-0", "-k", img, check=True)
    xz = Path(str(img) + ".xz")
    before = sha256(xz)
    out = tmp_path / "from-xz.img"
    r = run("resize-image.sh", xz, "32M", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 32 * MIB
    assert_files_intact(out, tmp_path)
    assert sha256(xz) == before
    r = run("resize-image.sh", xz, "32M", "--in-place")
    assert r.returncode == 2 and "compressed" in r.stderr


def test_shrink_above_used_size(tmp_path):
    img = make_image(tmp_path, root_mib=20)
    out = tmp_path / "small.img"
    r = run("resize-image.sh", img, "-8M", "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == img.stat().st_size - 8 * MIB
    assert_files_intact(out, tmp_path)
    assert boot_bytes(out) == boot_bytes(img)


def test_refuse_shrink_below_used_size(tmp_path):
    img = make_image(tmp_path)
    before = sha256(img)
    out = tmp_path / "tiny.img"
    r = run("resize-image.sh", img, "11M", "-o", out)   # 10 MiB root holding 3 MiB -> 2 MiB left
    assert r.returncode == 2
    assert "refusing to shrink" in r.stderr
    assert sha256(img) == before
    assert not out.exists(), "half-made output left behind"


def test_refuse_size_cutting_into_boot(tmp_path):
    img = make_image(tmp_path)
    before = sha256(img)
    r = run("resize-image.sh", img, "4M", "-o", tmp_path / "x.img")
    assert r.returncode == 2 and "cut into" in r.stderr
    assert sha256(img) == before


def test_third_partition_not_ext4_is_refused(tmp_path):
    img = make_image(tmp_path, extra=("fat", 8))
    before = sha256(img)
    r = run("resize-image.sh", img, "+8M", "-o", tmp_path / "x.img")
    assert r.returncode == 2
    assert "last partition (number 3" in r.stderr and "ext2/3/4" in r.stderr
    assert sha256(img) == before
    assert not (tmp_path / "x.img").exists()


def test_third_partition_ext4_is_grown(tmp_path):
    img = make_image(tmp_path, extra=("ext4", 4))
    r = run("resize-image.sh", img, "+8M", "-o", tmp_path / "x.img")
    assert r.returncode == 0, r.stderr
    assert "3 partitions: resizing partition 3" in r.stderr
    out = tmp_path / "x.img"
    ti, to = table(img)["partitions"], table(out)["partitions"]
    assert to[0] == {**ti[0], "node": to[0]["node"]} and to[1]["size"] == ti[1]["size"]
    assert to[2]["size"] == ti[2]["size"] + 8 * MIB // 512
    assert boot_bytes(out) == boot_bytes(img)
    assert_files_intact(out, tmp_path, root_index=1)   # partition 2 untouched


def test_extended_partition_is_refused(tmp_path):
    need(*IMAGE_TOOLS)
    img = tmp_path / "ext.img"
    with open(img, "wb") as f:
        f.truncate(24 * MIB)
    run("sfdisk", "-q", img, check=True, input="label: dos\nstart=2048, size=8192, type=c\n"
        "start=10240, size=38912, type=5\nstart=12288, size=36864, type=83\n")
    before = sha256(img)
    r = run("resize-image.sh", img, "+8M", "-o", tmp_path / "x.img")
    assert r.returncode == 2 and "extended partition" in r.stderr
    assert sha256(img) == before
    assert not (tmp_path / "x.img").exists()


def test_truncated_image_is_refused(tmp_path):
    img = make_image(tmp_path)
    cut = tmp_path / "cut.img"
    cut.write_bytes(img.read_bytes()[: 15 * MIB])
    before = sha256(cut)
    r = run("resize-image.sh", cut, "+8M", "-o", tmp_path / "x.img")
    assert r.returncode == 2 and "truncated" in r.stderr
    assert sha256(cut) == before
    assert not (tmp_path / "x.img").exists()
    r = run("extract-boot.sh", cut, tmp_path / "b")
    assert r.returncode == 2 and "truncated" in r.stderr


@pytest.mark.parametrize("content", [b"just some text\n" * 100, b""])
def test_not_a_disk_image(tmp_path, content):
    need(*IMAGE_TOOLS)
    f = tmp_path / "notes.img"
    f.write_bytes(content)
    before = sha256(f)
    for args in (["resize-image.sh", f, "+1M"], ["resize-image.sh", f, "+1M", "--in-place"],
                 ["extract-boot.sh", f, tmp_path / "b"]):
        r = run(*args)
        assert r.returncode == 2, r.stderr
        assert "not a disk image" in r.stderr
    assert sha256(f) == before
    assert not (tmp_path / "notes-resized.img").exists()


def test_missing_and_directory_inputs(tmp_path):
    need(*IMAGE_TOOLS)
    r = run("resize-image.sh", tmp_path / "nope.img", "8G")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run("resize-image.sh", tmp_path, "8G")
    assert r.returncode == 2 and "not a regular file" in r.stderr
    r = run("resize-image.sh", tmp_path / "nope.img", "eight")
    assert r.returncode == 2


def test_bad_size(tmp_path):
    img = make_image(tmp_path)
    before = sha256(img)
    r = run("resize-image.sh", img, "12Q")
    assert r.returncode == 2 and "not a size" in r.stderr
    assert sha256(img) == before


def test_existing_output_needs_force(tmp_path):
    img = make_image(tmp_path)
    out = tmp_path / "o.img"
    out.write_bytes(b"keep me")
    r = run("resize-image.sh", img, "+1M", "-o", out)
    assert r.returncode == 2 and "exists" in r.stderr
    assert out.read_bytes() == b"keep me"
    r = run("resize-image.sh", img, "+1M", "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == img.stat().st_size + MIB


def test_image_in_use_is_refused(tmp_path):
    need("fuser")
    img = make_image(tmp_path)
    before = sha256(img)
    holder = subprocess.Popen(["sh", "-c", 'exec 3<>"$1"; sleep 60', "sh", str(img)])
    try:
        time.sleep(0.3)
        for args in (["resize-image.sh", img, "+1M", "--in-place"],
                     ["extract-boot.sh", img, tmp_path / "b", "--enable-ssh", "--in-place"]):
            r = run(*args)
            assert r.returncode == 2, r.stderr
            assert "in use" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    assert sha256(img) == before


# ------------------------------------------------------------- extract-boot --
WANTED = ["bcm2708-rpi-zero.dtb", "bcm2709-rpi-2-b.dtb", "bcm2710-rpi-3-b-plus.dtb",
          "cmdline.txt", "config.txt", "kernel.img", "kernel7.img", "kernel8.img"]


def test_extract_boot_copies_the_right_files(tmp_path):
    img = make_image(tmp_path)
    before = sha256(img)
    out = tmp_path / "boot"
    r = run("extract-boot.sh", img, out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == WANTED
    for name in WANTED:
        assert (out / name).read_bytes() == BOOT_FILES[name], name
    assert sha256(img) == before
    assert r.stdout.strip() == str(img)


def test_extract_boot_enable_ssh_and_user_on_a_copy(tmp_path):
    need("openssl")
    img = make_image(tmp_path)
    before = sha256(img)
    out = tmp_path / "boot"
    r = run("extract-boot.sh", img, out, "--enable-ssh", "--user", "alice:s3cret pass")
    assert r.returncode == 0, r.stderr
    copy = out / img.name
    assert r.stdout.strip().splitlines()[-1] == str(copy)
    assert sha256(img) == before
    assert "ssh" not in fat_files(img, 0) and "userconf.txt" not in fat_files(img, 0)
    files = fat_files(copy, 0)
    assert "ssh" in files and "userconf.txt" in files
    spec = f"{copy}@@{table(copy)['partitions'][0]['start'] * 512}"
    userconf = run("mtype", "-i", spec, "::/userconf.txt", check=True).stdout.strip()
    name, hashed = userconf.split(":", 1)
    assert name == "alice" and hashed.startswith("$6$")
    salt = hashed.split("$")[2]
    again = run("openssl", "passwd", "-6", "-salt", salt, "-stdin", input="s3cret pass\n", check=True)
    assert again.stdout.strip() == hashed
    # the ext4 root and the other boot files are untouched in the copy
    assert_files_intact(copy, tmp_path)
    assert (out / "kernel8.img").read_bytes() == BOOT_FILES["kernel8.img"]


def test_extract_boot_in_place(tmp_path):
    need("openssl")
    img = make_image(tmp_path)
    r = run("extract-boot.sh", img, tmp_path / "boot", "--enable-ssh", "--in-place")
    assert r.returncode == 0, r.stderr
    assert "ssh" in fat_files(img, 0)
    assert not (tmp_path / "boot" / img.name).exists()


def test_extract_boot_bad_user(tmp_path):
    img = make_image(tmp_path)
    before = sha256(img)
    for user in ("Bad Name:pw", "alice"):
        r = run("extract-boot.sh", img, tmp_path / "boot", "--user", user)
        assert r.returncode == 2, r.stderr
    assert sha256(img) == before


# ----------------------------------------------------------------- run-qemu --
def test_run_qemu_dry_run_raspberry_pi_os(tmp_path):
    need("qemu-system-aarch64", "qemu-system-arm")
    img = make_image(tmp_path)
    r = run("run-qemu.sh", img, "--dry-run")
    assert r.returncode == 2 and "power of two" in r.stderr and "--pow2" in r.stderr
    run("resize-image.sh", img, "+0", "--pow2", "--in-place", check=True)
    before = sha256(img)
    r = run("run-qemu.sh", img, "--dry-run", "--ssh-port", "2345")
    assert r.returncode == 0, r.stderr
    cmd = r.stdout
    for part in ("qemu-system-aarch64", "raspi3b", "-m 1G", "kernel8.img", "bcm2710-rpi-3-b-plus.dtb",
                 "usb-net", "hostfwd=tcp::2345-:22", "-snapshot", "console=ttyAMA0", "-no-reboot"):
        assert part.replace(",", "\\,") in cmd or part in cmd, part
    assert "firstboot" not in cmd
    r = run("run-qemu.sh", img, "--dry-run", "--model", "pi2")
    assert r.returncode == 0, r.stderr
    assert "qemu-system-arm " in r.stdout and "raspi2b" in r.stdout and "kernel7.img" in r.stdout
    r = run("run-qemu.sh", img, "--dry-run", "--model", "virt")
    assert r.returncode == 2 and "test images only" in r.stderr
    r = run("run-qemu.sh", img, "--dry-run", "--model", "pi5")
    assert r.returncode == 2
    assert sha256(img) == before


def test_run_qemu_user_works_on_a_copy(tmp_path):
    need("qemu-system-aarch64", "openssl")
    img = make_image(tmp_path)
    run("resize-image.sh", img, "+0", "--pow2", "--in-place", check=True)
    before = sha256(img)
    r = run("run-qemu.sh", img, "--dry-run", "--user", "pi:raspberry")
    assert r.returncode == 0, r.stderr
    assert str(img) not in r.stdout.replace("\\", "")  # boots a copy
    assert "-snapshot" not in r.stdout
    assert sha256(img) == before


# --------------------------------------------------------------- Dockerfiles --
def referenced_paths(dockerfile):
    """Repository paths a Dockerfile relies on: COPY/ADD sources and pi/..., .ci/...,
    tests/... paths named in RUN/CMD/ENTRYPOINT lines."""
    text = dockerfile.read_text().replace("\\\n", " ")
    paths = set()
    for line in text.splitlines():
        line = line.strip()
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0].upper() in ("COPY", "ADD"):
            args = [w for w in words[1:] if not w.startswith("--")]
            if args and args[0].startswith("["):
                args = json.loads(" ".join(args))
            paths.update(a for a in args[:-1])
        # repository paths, also where COPY put them under /opt/clconv/
        for m in re.finditer(r"(?:(?<=/opt/clconv/)|(?<![\w/.-]))((?:pi|\.ci|docker|tests)/[\w./-]+)", line):
            paths.add(m.group(1))
    return paths


def test_dockerfiles_reference_existing_files():
    dockerfiles = sorted((REPO / "docker").glob("Dockerfile*"))
    assert {d.name for d in dockerfiles} >= {"Dockerfile", "Dockerfile.pi-emulator"}
    for d in dockerfiles:
        refs = referenced_paths(d)
        assert refs, f"{d.name} references no repository files"
        for ref in refs:
            if ref in (".", "./"):
                continue
            matches = list(REPO.glob(ref.rstrip("/"))) if any(c in ref for c in "*?[") else \
                [REPO / ref.rstrip("/")]
            assert matches and all(m.exists() for m in matches), f"{d.name}: {ref} does not exist"


def test_emulated_rootfs_has_the_runtime_dependencies():
    """Every runtime dependency in pyproject.toml must be in the Debian package list of
    the emulated rootfs (pi/lib.sh), as python3-<name>, or the emulated tiers fail to import."""
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    m = re.search(r"^PI_ROOTFS_PACKAGES=\$\{CLCONV_PI_PACKAGES:-([^}]*)\}", (PI / "lib.sh").read_text(), re.M)
    assert m, "PI_ROOTFS_PACKAGES not found in pi/lib.sh"
    packages = set(m.group(1).split(","))
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower().replace("_", "-")
        assert f"python3-{name}" in packages, f"add python3-{name} to PI_ROOTFS_PACKAGES in pi/lib.sh"


def test_ci_pi_tier_exists_and_is_strict():
    """Every step goes through .ci/lib.sh's tier runner (tests/test_ci.py tests it) and
    the script fails when any step did."""
    script = REPO / ".ci" / "pi-tier.sh"
    text = script.read_text()
    assert "set -uo pipefail" in text and ". .ci/lib.sh" in text
    assert 'tier_summary "pi tier" || exit 1' in text
    for ref in re.findall(r"\bpi/[\w.-]+\.sh", text):
        assert (REPO / ref).exists(), ref


# ---------------------------------------------------------------- emulation --
def need_root_emulation():
    need("qemu-system-aarch64", "mmdebstrap", "qemu-aarch64-static", *IMAGE_TOOLS)
    if os.geteuid() != 0:
        pytest.skip("needs root (mmdebstrap root mode, chroot, binfmt_misc)")


@pytest.fixture(scope="module")
def test_image(tmp_path_factory):
    need_root_emulation()
    out = tmp_path_factory.mktemp("img") / "arm64.img"
    r = run("build-test-image.sh", "--arch", "arm64", out, timeout=1800)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.emulation
def test_build_test_image_layout(test_image, tmp_path):
    size = test_image.stat().st_size
    assert size & (size - 1) == 0, "test image size must be a power of two"
    t = table(test_image)
    assert t["label"] == "dos" and [p["type"] for p in t["partitions"]] == ["c", "83"]
    files = fat_files(test_image, 0)
    for f in ("kernel8.img", "initramfs8", "bcm2837-rpi-3-b.dtb", "cmdline.txt", "config.txt",
              "clconv-test-image"):
        assert f in files
    assert b"python3" in ext4_file(test_image, 1, "/var/lib/dpkg/status", tmp_path)


@pytest.mark.emulation
@pytest.mark.parametrize("model", ["virt", "pi3"])
def test_run_qemu_serial_mode_exit_code(test_image, tmp_path, model):
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "marker.txt").write_text("from the host\n")
    before = sha256(test_image)
    r = run("run-qemu.sh", test_image, "--model", model, "--repo", repo, "--timeout", "600", "--",
            "cat tests/marker.txt; python3 -c 'import pyopencl as cl; print(cl.get_platforms()[0].name)'; exit 7",
            timeout=700)
    assert r.returncode == 7, r.stdout[-3000:] + r.stderr
    assert "from the host" in r.stdout and "Portable Computing Language" in r.stdout
    assert sha256(test_image) == before


@pytest.mark.emulation
@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_test_emulated_user_tier(tmp_path, arch):
    need_root_emulation()
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_tiny.py").write_text(
        "import platform, pyopencl as cl\n"
        "def test_arch():\n    assert platform.machine() in ('aarch64', 'armv7l', 'armv8l')\n"
        "def test_opencl():\n    assert cl.get_platforms()[0].get_devices()\n")
    r = run("test-emulated.sh", "--arch", arch, "--repo", repo, "--", "-q", timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "2 passed" in r.stdout
    r = run("test-emulated.sh", "--arch", arch, "--repo", repo, "--", "-q", "-k", "nothing_matches",
            timeout=1800)
    assert r.returncode == 5
    with open("/proc/mounts") as f:
        assert "clconv-pi." not in f.read(), "mounts left behind"


def test_docker_build_and_test_has_help_and_refuses_unknown_arguments():
    need("bash")
    script = REPO / "docker" / "build-and-test.sh"
    r = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Usage:" in r.stdout and "build-and-test.sh" in r.stdout
    r = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "--bogus" in r.stderr
