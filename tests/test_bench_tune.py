"""`clconv bench` and `clconv tune` smoke tests on one tiny layer. No timing assertions:
only that they run, print, write JSON / the database, and skip absent peers with a
printed reason."""
import builtins
import json
import os
import subprocess
import sys

import pytest

from clconv import tuning
from clconv.cli import main
from clconv.commands import EXIT_USAGE
from clconv.commands import bench as bench_command
from clconv.device import DeviceKind
from clconv.runtime import current


@pytest.fixture
def no_peers(monkeypatch):
    """tinygrad and matplotlib look absent (whether or not they are installed)."""
    real_import = builtins.__import__
    real_find = __import__("importlib.util").util.find_spec

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in ("tinygrad", "matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    def fake_find(name, *args, **kwargs):
        if name.split(".")[0] in ("tinygrad", "matplotlib"):
            return None
        return real_find(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("importlib.util.find_spec", fake_find)


def test_bench_smoke_writes_json_and_skips_absent_peers(tmp_path, capsys, no_peers):
    out = tmp_path / "bench.json"
    assert main(["bench", "--suite", "smoke", "--rounds", "1", "--min-time", "0.001",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "peer tinygrad: skipped: tinygrad not installed" in text
    assert "tiny-3x3" in text and "median" in text
    data = json.loads(out.read_text())
    layer = data["layers"][0]
    assert layer["layer"] == "tiny-3x3"
    assert layer["fwd_gflops_clconv"] > 0 and layer["fwdbwd_gflops_clconv"] > 0
    assert set(layer["algos"]) == {"forward", "grad_input", "grad_weight"}
    assert "median_fwd_gflops_clconv" in data["summary"]
    assert data["peers"]["tinygrad"].startswith("tinygrad not installed")


def test_bench_plot_without_matplotlib_says_what_to_install(tmp_path, capsys, no_peers):
    code = main(["bench", "--suite", "smoke", "--no-torch", "--plot", str(tmp_path / "p.png")])
    assert code != 0
    assert "pip install" in capsys.readouterr().err


def test_bench_unknown_layer_is_a_usage_error(capsys):
    assert main(["bench", "--layer", "no-such-layer"]) == EXIT_USAGE
    assert "resnet18-3x3-56" in capsys.readouterr().err


AVX2_FLAGS = {"avx2", "fma", "sse4_2"}


@pytest.mark.parametrize("flags,environ,loaded,says", [
    ({"sse4_2"}, {}, False, "this CPU lacks avx2, fma"),
    (AVX2_FLAGS, {"POCL_LLVM_CPU_NAME": "znver4"}, False, "POCL_LLVM_CPU_NAME=znver4 is set"),
    (AVX2_FLAGS, {}, True, "already started in this process"),
])
def test_hold_isa_refuses_what_it_cannot_hold(flags, environ, loaded, says):
    before = dict(environ)
    reason = bench_command.hold_isa("avx2", environ, flags, loaded)
    assert reason is not None and says in reason
    assert environ == before  # nothing set half-way


def test_hold_isa_sets_every_peer():
    environ = {"POCL_KERNELLIB_NAME": "avx2"}  # already the value it sets: no conflict
    assert bench_command.hold_isa("avx2", environ, AVX2_FLAGS, False) is None
    assert environ == {"POCL_LLVM_CPU_NAME": "haswell", "POCL_KERNELLIB_NAME": "avx2",
                       "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_bench_hold_isa_after_opencl_started_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(bench_command, "cpu_flags", lambda: AVX2_FLAGS)  # any CPU
    for name in bench_command.HELD_ISAS["avx2"].settings:
        monkeypatch.delenv(name, raising=False)
    current()  # this process's driver has read its settings
    assert main(["bench", "--suite", "smoke", "--hold-isa", "avx2"]) == EXIT_USAGE
    assert ("--hold-isa avx2: OpenCL or PyTorch already started in this process"
            in capsys.readouterr().err)


def test_bench_hold_isa_compiles_for_the_older_cpu():
    """In a process of its own, POCL then compiles for haswell (AVX2) and says so."""
    if not set(bench_command.HELD_ISAS["avx2"].flags) <= bench_command.cpu_flags():
        pytest.skip("this CPU has no AVX2 and FMA to hold to")
    if current().profile.kind != DeviceKind.POCL_CPU:
        pytest.skip(f"the default device is not POCL on the CPU: {current().profile.label}")
    result = subprocess.run([sys.executable, "-m", "clconv.cli", "bench", "--suite", "smoke",
                             "--rounds", "1", "--min-time", "0.001", "--no-torch",
                             "--no-tinygrad", "--hold-isa", "avx2"],
                            capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if k not in bench_command.HELD_ISAS["avx2"].settings})
    assert result.returncode == 0, result.stderr
    assert "pthread-haswell" in result.stdout and "held:    every peer to AVX2" in result.stdout
    assert "tiny-3x3" in result.stdout


def test_tune_smoke_stores_the_winners(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(tuning.ENV_DIR, str(tmp_path))
    tuning.forget_cache()
    try:
        assert main(["tune", "--suite", "smoke", "--max-configs", "2", "--rounds", "1"]) == 0
        out = capsys.readouterr().out
        assert "saved to" in out
        files = list(tmp_path.glob("*.json"))
        assert len(files) == 1
        entries = json.loads(files[0].read_text())["entries"]
        assert len(entries) == 3  # forward, grad_input, grad_weight of the tiny layer
        assert all(e["algo"] and e["ms"] > 0 for e in entries.values())
    finally:
        tuning.forget_cache()
