"""No data loss in pi/resize-image.sh (and the shared pi/lib.sh it uses):

- every file of the root filesystem is byte-identical after shrinking or
  growing, including files of allocated zero blocks moved over stale data
  (deleted files' bytes left in free space) and names with spaces, quotes,
  commas and a leading dash;
- image paths with quotes, commas and spaces select the right partitions;
- a failed or interrupted --in-place run leaves the image byte-identical.

Images are built and read back without mounting or root: mkfs.ext4 on a plain
file, debugfs to write, delete and dump files, sfdisk and mtools for the rest.
"""
import os
import random
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_pi_scripts import IMAGE_TOOLS, MIB, PI, env, need, read_range, run, sha256, table

BLOCK = 4096
ROOT_START = 4 * MIB          # the root partition's offset (after a 3 MiB FAT boot partition)
# Names ext4 allows that trip up shell quoting, CSV-ish parsing and option parsing.
NAME = st.text(alphabet="ab -,\"'", min_size=1, max_size=8).filter(lambda n: n.strip(". "))
SUBDIR = 'sub dir, "q"'


def debugfs_quote(path):
    """A path as one debugfs argument (libss: double quotes, "" for a quote)."""
    return '"' + path.replace('"', '""') + '"'


def debugfs(fs, *commands, write=False):
    script = Path(str(fs) + ".cmds")
    script.write_text("\n".join(commands) + "\n")
    r = run("debugfs", *(["-w"] if write else []), "-f", script, fs, check=True)
    script.unlink()
    return r.stdout


def build_image(tmp_path, files, stale_bytes, root_bytes, name="disk.img"):
    """MBR image: p1 FAT (one random file), p2 ext4 of `root_bytes`.  `files`
    maps a path ("name" or SUBDIR/"name") to (content, zeroed).  A file of
    `stale_bytes` random bytes is written first (lowest blocks) and deleted at
    the end, so its bytes stay in free space; a zeroed file is written with
    random bytes whose blocks are then overwritten with zeros in place:
    allocated zero blocks, not holes.  Returns (image, expected contents)."""
    need(*IMAGE_TOOLS)
    work = tmp_path / f"build-{name}"
    work.mkdir()
    rng = random.Random(len(files) * 7919 + stale_bytes)
    boot = work / "boot.vfat"
    with open(boot, "wb") as f:
        f.truncate(ROOT_START - MIB)
    run("mkfs.vfat", "-n", "BOOT", boot, check=True)
    (work / "config.txt").write_bytes(rng.randbytes(5000))
    run("mcopy", "-i", boot, work / "config.txt", "::/config.txt", check=True)

    root = work / "root.ext4"
    with open(root, "wb") as f:
        f.truncate(root_bytes)
    run("mkfs.ext4", "-q", "-F", "-b", str(BLOCK), root, check=True)
    cmds = []
    if stale_bytes:
        (work / "stale").write_bytes(rng.randbytes(stale_bytes))
        cmds.append(f"write {debugfs_quote(str(work / 'stale'))} stale")
    if any(p.startswith(SUBDIR + "/") for p in files):
        cmds.append(f"mkdir {debugfs_quote(SUBDIR)}")
    expected = {}
    for i, (path, (data, zeroed)) in enumerate(files.items()):
        src = work / f"src{i}"
        src.write_bytes(rng.randbytes(len(data)) if zeroed else data)
        cmds.append(f"write {debugfs_quote(str(src))} {debugfs_quote(path)}")
        expected[path] = b"\0" * len(data) if zeroed else data
    debugfs(root, *cmds, write=True)
    zeroed = [p for p, (data, z) in files.items() if z and data]
    if zeroed:
        listing = debugfs(root, *(f"blocks {debugfs_quote(p)}" for p in zeroed))
        blocks = [int(b) for line in listing.splitlines() if not line.startswith("debugfs")
                  for b in line.split()]
        assert blocks, listing
        with open(root, "r+b") as f:
            for b in blocks:
                f.seek(b * BLOCK)
                f.write(b"\0" * BLOCK)
    if stale_bytes:
        debugfs(root, "rm stale", write=True)
    assert run("e2fsck", "-f", "-n", root).returncode == 0

    img = tmp_path / name
    with open(img, "wb") as f:
        f.truncate(ROOT_START + root_bytes)
    run("sfdisk", "-q", img, check=True, input=f"label: dos\nstart={MIB // 512}, "
        f"size={(ROOT_START - MIB) // 512}, type=c\nstart={ROOT_START // 512}, type=83\n")
    with open(img, "r+b") as f:
        f.seek(MIB)
        f.write(boot.read_bytes())
        f.seek(ROOT_START)
        f.write(root.read_bytes())
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    return img, expected


def root_files(img, tmp_path):
    """{path: bytes} of every file in the image's ext4 root (lost+found aside),
    after e2fsck -f -n finds it clean."""
    p = table(img)["partitions"][1]
    fs = tmp_path / f"root-{time.monotonic_ns()}.ext4"
    fs.write_bytes(read_range(img, p["start"] * 512, p["size"] * 512))
    check = run("e2fsck", "-f", "-n", fs)
    assert check.returncode == 0, check.stdout + check.stderr
    out = tmp_path / f"dump-{time.monotonic_ns()}"
    out.mkdir()
    debugfs(fs, f"rdump / {debugfs_quote(str(out))}")
    fs.unlink()
    found = {}
    for dirpath, _, names in os.walk(out):
        for n in names:
            full = Path(dirpath) / n
            rel = full.relative_to(out).as_posix()
            if not rel.startswith("lost+found/"):
                found[rel] = full.read_bytes()
    shutil.rmtree(out)
    return found


def boot_partition(img):
    p = table(img)["partitions"][0]
    return read_range(img, p["start"] * 512, p["size"] * 512)


def min_root_bytes(img):
    """resize2fs -P's minimum for the image's root filesystem, in bytes."""
    p = table(img)["partitions"][1]
    fs = Path(str(img) + ".min.ext4")
    fs.write_bytes(read_range(img, p["start"] * 512, p["size"] * 512))
    r = run("resize2fs", "-P", fs, check=True)
    fs.unlink()
    return int(r.stdout.split(":")[-1]) * BLOCK


def leftovers(directory, keep):
    return sorted(p.name for p in Path(directory).iterdir() if p.name not in keep)


# ------------------------------------------------------------------ shrinking --
def fake_tool(directory, name, script):
    """An executable `name` in `directory` running the bash `script`; returns the
    environment with `directory` first in PATH."""
    directory.mkdir(exist_ok=True)
    (directory / name).write_text("#!/bin/bash\n" + script)
    (directory / name).chmod(0o755)
    e = env()
    e["PATH"] = f"{directory}:{e['PATH']}"
    return e


@pytest.mark.parametrize("punch_holes", [True, False])
def test_shrink_keeps_allocated_zero_blocks_moved_over_stale_data(tmp_path, punch_holes):
    """The issue's case, scaled down: deleted random data in free space, then a
    file of allocated zero blocks that the shrink moves over it.  Writing the
    shrunk filesystem back with `dd conv=sparse` skipped its zero blocks and
    left the stale bytes there (e2fsck still clean).  Also where the image's
    filesystem cannot punch holes (fallocate fails)."""
    files = {"zeros": (b"\0" * (16 * MIB), True), "data": (os.urandom(300_000), False)}
    img, expected = build_image(tmp_path, files, stale_bytes=32 * MIB, root_bytes=64 * MIB)
    boot = boot_partition(img)
    new = ROOT_START + (min_root_bytes(img) + 2 * MIB) // MIB * MIB
    out = tmp_path / "small.img"
    e = env() if punch_holes else fake_tool(tmp_path / "fakebin", "fallocate",
                                            "echo 'fallocate: Operation not supported' >&2; exit 1\n")
    r = subprocess.run([str(PI / "resize-image.sh"), str(img), str(new), "-o", str(out)],
                       capture_output=True, text=True, env=e, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == new
    got = root_files(out, tmp_path)
    assert got.keys() == expected.keys()
    for path in expected:
        assert got[path] == expected[path], f"{path}: {sum(b != 0 for b in got[path])} bytes changed"
    assert boot_partition(out) == boot


@st.composite
def file_trees(draw):
    """(path, size, kind) of files with awkward names, some of allocated zero
    blocks or holes, and one big zeroed file that a shrink has to move over
    the stale data.  Sizes, not contents: the contents come from `seed`."""
    entries = draw(st.lists(st.tuples(st.booleans(), NAME, st.integers(0, 600_000),
                                      st.sampled_from(["data", "zeroed", "sparse"])),
                            min_size=1, max_size=6, unique_by=lambda e: (e[0], e[1])))
    tree = [('big zeroed, "-"', draw(st.integers(5 * MIB, 12 * MIB)), "zeroed")]
    tree += [(f"{SUBDIR}/{name}" if in_subdir else name, size, kind)
             for in_subdir, name, size, kind in entries]
    return tree


def contents(tree, seed):
    """{path: (bytes, zeroed)} for build_image."""
    rng = random.Random(seed)
    return {path: (rng.randbytes(size) if kind == "data" else b"\0" * size, kind == "zeroed")
            for path, size, kind in tree}


PROPERTY = settings(max_examples=6, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(tree=file_trees(), seed=st.integers(0, 2**32), stale_mib=st.integers(4, 20),
       slack_mib=st.integers(0, 6))
def test_shrink_keeps_every_file(tmp_path_factory, tree, seed, stale_mib, slack_mib):
    tmp = tmp_path_factory.mktemp("shrink")
    files = contents(tree, seed)
    used = sum(len(d) for d, _ in files.values())
    root_bytes = (used + stale_mib * MIB + 24 * MIB) // MIB * MIB
    img, expected = build_image(tmp, files, stale_mib * MIB, root_bytes)
    boot = boot_partition(img)
    new = ROOT_START + (min_root_bytes(img) + slack_mib * MIB + MIB - 1) // MIB * MIB
    out = tmp / "small.img"
    r = run("resize-image.sh", img, str(new), "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == new
    assert root_files(out, tmp) == expected
    assert boot_partition(out) == boot


@PROPERTY
@given(tree=file_trees(), seed=st.integers(0, 2**32), stale_mib=st.integers(0, 8),
       grow_mib=st.integers(1, 40), in_place=st.booleans())
def test_grow_keeps_every_file(tmp_path_factory, tree, seed, stale_mib, grow_mib, in_place):
    tmp = tmp_path_factory.mktemp("grow")
    files = contents(tree, seed)
    used = sum(len(d) for d, _ in files.values())
    root_bytes = (used + stale_mib * MIB + 12 * MIB) // MIB * MIB
    img, expected = build_image(tmp, files, stale_mib * MIB, root_bytes)
    boot = boot_partition(img)
    size = img.stat().st_size
    args = ["--in-place"] if in_place else ["-o", tmp / "big.img"]
    r = run("resize-image.sh", img, f"+{grow_mib}M", *args)
    assert r.returncode == 0, r.stderr
    out = img if in_place else tmp / "big.img"
    assert out.stat().st_size == size + grow_mib * MIB
    assert root_files(out, tmp) == expected
    assert boot_partition(out) == boot
    assert leftovers(tmp, {"disk.img", "big.img"}) == []


# ----------------------------------------------------------------- odd paths --
@pytest.mark.parametrize("name", ['my "pi", v1.img', "a,b.img", 'q".img', "two  spaces 1.img"])
def test_image_paths_with_quotes_commas_spaces(tmp_path, name):
    files = {"f": (os.urandom(100_000), False)}
    img, expected = build_image(tmp_path, files, 0, 16 * MIB, name=name)
    boot = boot_partition(img)
    before = sha256(img)
    out = tmp_path / f"out {name}"
    r = run("resize-image.sh", img, "+3M", "-o", out)
    assert r.returncode == 0, r.stderr
    assert sha256(img) == before
    assert out.stat().st_size == img.stat().st_size + 3 * MIB
    assert table(out)["partitions"][1]["size"] * 512 == 16 * MIB + 3 * MIB
    assert root_files(out, tmp_path) == expected
    assert boot_partition(out) == boot

    r = run("resize-image.sh", img, "+2M", "--in-place")
    assert r.returncode == 0, r.stderr
    assert root_files(img, tmp_path) == expected
    assert table(img)["partitions"][1]["size"] * 512 == 16 * MIB + 2 * MIB

    r = run("extract-boot.sh", img, tmp_path / "boot files", "--enable-ssh", "--in-place")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "boot files" / "config.txt").exists()
    spec = f"{img}@@{table(img)['partitions'][0]['start'] * 512}"
    assert "ssh" in run("mdir", "-b", "-i", spec, "::/", check=True).stdout
    assert root_files(img, tmp_path) == expected


# -------------------------------------------------------- in-place: all or nothing --
def test_in_place_refused_shrink_leaves_image_identical(tmp_path):
    img, _ = build_image(tmp_path, {"f": (os.urandom(4 * MIB), False)}, 0, 16 * MIB)
    before = sha256(img)
    r = run("resize-image.sh", img, str(ROOT_START + 2 * MIB), "--in-place")
    assert r.returncode == 2 and "refusing to shrink" in r.stderr
    assert sha256(img) == before
    assert leftovers(tmp_path, {img.name}) == []


def test_in_place_failure_midway_leaves_image_identical(tmp_path):
    """sfdisk fails when writing the partition (after the old code had already
    grown the file): the image must be byte-identical, nothing left behind."""
    files = {"f": (os.urandom(1_000_000), False)}
    img, expected = build_image(tmp_path, files, 2 * MIB, 16 * MIB)
    st_before = img.stat()
    before = sha256(img)
    real = subprocess.run(["bash", "-c", "command -v sfdisk"], capture_output=True, text=True,
                          env=env()).stdout.strip()
    e = fake_tool(tmp_path / "fakebin", "sfdisk",
                  'for a in "$@"; do [[ "$a" == -N ]] && { echo injected >&2; exit 1; }; done\n'
                  f'exec {real} "$@"\n')
    r = subprocess.run([str(PI / "resize-image.sh"), str(img), "+8M", "--in-place"],
                       capture_output=True, text=True, env=e, timeout=300)
    assert r.returncode == 1 and "injected" in r.stderr, r.stderr
    assert img.stat().st_size == st_before.st_size
    assert sha256(img) == before
    assert leftovers(tmp_path, {img.name, "fakebin"}) == []
    assert root_files(img, tmp_path) == expected


@pytest.mark.parametrize("tool,when", [("resize2fs", '" $* " != *" -P "*'),
                                       ("sfdisk", '" $* " == *" -N "*')])
def test_in_place_ctrl_c_midway_leaves_image_identical(tmp_path, tool, when):
    """Ctrl-C (SIGINT to the whole process group) while `tool` runs with
    arguments matching `when`: while the filesystem is resized, and while the
    partition is rewritten (growing, the old code had grown the file by then;
    shrinking, it left the partition shrunk and the filesystem not written
    back)."""
    files = {"f": (os.urandom(2 * MIB), False)}
    img, expected = build_image(tmp_path, files, 8 * MIB, 48 * MIB)
    before = sha256(img)
    real = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True,
                          env=env()).stdout.strip()
    e = fake_tool(tmp_path / "fakebin", tool,
                  f'if [[ {when} ]]; then kill -INT 0; sleep 5; fi\nexec {real} "$@"\n')
    for size in ("+16M", "-16M"):
        p = subprocess.run([str(PI / "resize-image.sh"), str(img), size, "--in-place"],
                           capture_output=True, text=True, env=e, timeout=300,
                           start_new_session=True)
        assert p.returncode == 130, p.stderr
        assert sha256(img) == before, size
        assert leftovers(tmp_path, {img.name, "fakebin"}) == []
    assert root_files(img, tmp_path) == expected


def test_in_place_keeps_mode(tmp_path):
    img, _ = build_image(tmp_path, {"f": (b"x", False)}, 0, 16 * MIB)
    img.chmod(0o640)
    r = run("resize-image.sh", img, "+1M", "--in-place")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(img.stat().st_mode) == 0o640
