"""Files clconv writes are written atomically: model files (nn.state.save), the tuning
database (several writers at once), and the atomic_write helper they share."""
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from clconv import tuning
from clconv.atomic_file import atomic_write
from clconv.nn.state import save

REPO = Path(__file__).resolve().parents[1]


class Stub:
    """Just what save() needs: a state_dict of numpy arrays (no OpenCL device)."""
    def __init__(self, seed, size=1000):
        rng = np.random.default_rng(seed)
        self.state = {"0.weight": rng.standard_normal((size,)).astype(np.float32),
                      "0.bias": rng.standard_normal((7,)).astype(np.float32)}

    def state_dict(self):
        return dict(self.state)


def assert_holds(path, stub):
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(stub.state)
        for key, value in stub.state.items():
            np.testing.assert_array_equal(archive[key], value)


# --- atomic_write ------------------------------------------------------------------------

def test_atomic_write_replaces_exactly_the_path_and_keeps_permissions(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_write_new_file_gets_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "t.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.json").stat().st_mode) == 0o640


def test_atomic_write_error_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old contents")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_atomic_write_rejects_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass


@pytest.mark.parametrize("name,magic", [("plot.png", b"\x89PNG"), ("plot.svg", b"<?xml"),
                                        ("plot", b"\x89PNG")])
def test_save_figure_writes_exactly_the_path_in_its_suffix_format(tmp_path, name, magic):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clconv.atomic_file import save_figure
    fig = plt.figure()
    try:
        save_figure(fig, tmp_path / name, dpi=50)
    finally:
        plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert (tmp_path / name).read_bytes().startswith(magic)


# --- nn.state.save -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.bin", "model", "m.npz", "with space, \"q\".npz"])
def test_save_writes_exactly_the_path_given(tmp_path, name):
    stub = Stub(1)
    save(stub, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert_holds(tmp_path / name, stub)


def test_save_error_keeps_the_old_model_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = Stub(1)
    save(old, path)

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 the first bytes")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save(Stub(2), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert_holds(path, old)


# A save over an existing model that stops half-way through writing the archive (np.savez
# replaced by one that writes a little, says so, and waits to be killed).
KILLED_SAVE = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_atomic_files import Stub
    from clconv.nn.state import save

    def stalled_savez(file, **arrays):
        if isinstance(file, (str, os.PathLike)):   # given a name, np.savez opens it for writing
            file = open(file, "wb")
        file.write(b"PK\\x03\\x04 the first bytes")
        file.flush()
        print("writing", flush=True)
        time.sleep(60)
    np.savez = stalled_savez
    save(Stub(2), sys.argv[1])
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_save_keeps_the_old_model_loadable(tmp_path, sig):
    path = tmp_path / "model.npz"
    old = Stub(1, size=200_000)
    save(old, path)
    before = path.read_bytes()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "writing\n", proc.stderr.read()
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert path.read_bytes() == before
    assert_holds(path, old)
    left = sorted(p.name for p in tmp_path.iterdir())
    if sig == signal.SIGINT:   # Python unwinds: the temporary file is removed
        assert left == ["model.npz"]
    else:                      # nothing runs after SIGKILL; its temporary file is hidden
        assert "model.npz" in left
        assert all(n == "model.npz" or n.startswith(".model.npz.") for n in left), left


def test_save_and_load_a_real_model_at_a_path_without_npz(tmp_path, rng):
    from clconv import nn
    from clconv.nn.state import load
    m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    m(rng.standard_normal((2, 1, 5, 5)).astype(np.float32))   # moves the running statistics
    path = tmp_path / "model.bin"
    save(m, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    fresh = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    load(fresh, path)
    for (k, a), (k2, b) in zip(m.state_dict().items(), fresh.state_dict().items()):
        assert k == k2
        np.testing.assert_array_equal(a, b)


# --- tuning database ---------------------------------------------------------------------

PROFILE = dict(device_name="Test Device", driver_version="1.0", limits_name="", label="test",
               kind=3)
# What the database needs of a device profile (hashable, like the real one).
Profile = namedtuple("Profile", sorted(PROFILE))

# One writer: waits for the start signal, then saves its entries one by one.
TUNING_WRITER = textwrap.dedent("""
    import os, sys, time
    from collections import namedtuple
    from clconv import tuning
    writer, count, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    fields = eval(sys.argv[4])
    profile = namedtuple("Profile", sorted(fields))(**fields)
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(count):
        tuning.save(profile, {f"w{writer}-{i}": {"algo": "im2col", "params": {"i": i}}})
""")


def test_concurrent_tuning_saves_keep_every_entry(tmp_path):
    writers, count = 6, 15
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               **{tuning.ENV_DIR: str(tmp_path / "db")})
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", TUNING_WRITER, str(w), str(count), str(go),
                               repr(PROFILE)], stderr=subprocess.PIPE, text=True, env=env)
             for w in range(writers)]
    go.touch()
    errors = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in errors), [err for rc, err in errors if rc]
    path = tmp_path / "db" / f"{tuning.device_key(Profile(**PROFILE))}.json"
    entries = tuning._read_entries(path)
    missing = [f"w{w}-{i}" for w in range(writers) for i in range(count)
               if f"w{w}-{i}" not in entries]
    assert not missing, f"{len(missing)} of {writers * count} entries lost: {missing[:5]}"
    assert not [p.name for p in (tmp_path / "db").iterdir() if p.name.endswith(".tmp")]
