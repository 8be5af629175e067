"""The clconv command line: --help, devices, check, exit codes."""
import os
import subprocess
import sys

import pytest

from clconv.cli import main
from clconv.optable import OPS


def run(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "clconv.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "devices" in out and "check" in out and "CLCONV_DEVICE" in out


def test_devices_lists_the_table_choice_and_reason(capsys):
    assert main(["devices", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "chosen:" in out and "why:" in out
    assert out.count("\n*") == 1  # exactly one device marked as chosen
    assert "max_work_group_size" in out


def test_devices_with_an_override_that_matches_nothing_exits_2():
    result = run("devices", env={"CLCONV_DEVICE": "no-such-device-xyz"})
    assert result.returncode == 2
    assert "matches no device" in result.stderr and "platform:device" in result.stderr


def test_unknown_command_is_a_usage_error():
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_check_runs_every_op_against_the_reference(capsys):
    assert main(["check", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "device:" in out and "all ops match" in out
    for spec in OPS:  # every op of the table and its gradient has its row
        assert f"\n{spec.name} " in out
        assert spec.grad is None or f"\n{spec.grad.op.__name__}" in out
    for op in ("conv2d_backward grad_weight", "conv1d_backward grad_input",
               "linear_backward grad_bias", "conv3d_backward grad_weight"):
        assert op in out
    assert "MISMATCH" not in out


@pytest.mark.smoke
def test_check_ops_checks_only_the_ops_named(capsys):
    """The booted emulated Pi runs this one: each kernel build takes minutes there."""
    assert main(["check", "--batch", "2", "--ops", "conv2d, max_pool2d"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()[4:] if line.endswith(" ok")]
    assert set(rows) == {"conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward"}
    assert "all ops match" in out and "MISMATCH" not in out
    assert main(["check", "--ops", "conv2d,nope"]) == 2
    err = capsys.readouterr().err
    assert "--ops: unknown op nope" in err and "max_pool3d" in err


def test_check_exits_1_on_a_mismatch(monkeypatch, capsys):
    monkeypatch.setattr("clconv.selfcheck.TOLERANCE", -1.0)  # nothing can pass
    assert main(["check", "--batch", "1"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


# Every number on the command line is checked by argparse before the command runs:
# exit code 2 and one line naming the option, the value and the allowed range.
BAD_OPTIONS = [
    (["bench-model", "m.onnx", "--threads", "-1"], "--threads", "[1, 1024], got -1"),
    (["bench-model", "m.onnx", "--threads", "100000"], "--threads", "got 100000"),
    (["bench-model", "m.onnx", "--runs", "0"], "--runs", ">= 1, got 0"),
    (["bench-model", "m.onnx", "--warmup", "-1"], "--warmup", ">= 0, got -1"),
    (["run", "m.onnx", "--random", "--runs", "0"], "--runs", ">= 1, got 0"),
    (["run", "m.onnx", "--random", "--std", "0"], "--std", "> 0, got 0"),
    (["run", "m.onnx", "--random", "--std", "inf"], "--std", "finite"),
    (["run", "m.onnx", "--random", "--mean", "nan"], "--mean", "finite"),
    (["run", "m.onnx", "--random", "--top", "-3"], "--top", ">= 1, got -3"),
    (["run", "m.onnx", "--random", "--size", "0"], "--size", "got 0"),
    (["run", "m.onnx", "--random", "--seed", "-1"], "--seed", "got -1"),
    (["tune", "--max-configs", "0"], "--max-configs", ">= 1, got 0"),
    (["tune", "--rounds", "x"], "--rounds", "'x'"),
    (["bench", "--min-time", "nan"], "--min-time", "> 0, got nan"),
    (["bench", "--rounds", "0"], "--rounds", ">= 1, got 0"),
    (["check", "--batch", "0"], "--batch", "[1, 1024], got 0"),
    (["demo", "--lr", "-1"], "--lr", "> 0, got -1"),
    (["demo", "--epochs", "0"], "--epochs", ">= 1, got 0"),
]


@pytest.mark.parametrize("argv, option, message", BAD_OPTIONS,
                         ids=[" ".join(a[0:1] + a[-2:]) for a, _, _ in BAD_OPTIONS])
def test_bad_numbers_exit_2_naming_the_option_value_and_range(argv, option, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert option in last and message in last and "Traceback" not in err


@pytest.mark.parametrize("name, value, allowed", [
    ("CLCONV_LIMITS", "bogus", "videocore4"),
    ("CLCONV_ALGO", "bogus", "im2col"),
    ("POCL_MAX_PTHREAD_COUNT", "-1", "[1, 1024]"),
    ("CLCONV_POISON_OUTPUTS", "false", "0, 1 or unset"),
])
def test_bad_environment_settings_exit_2_in_one_line(name, value, allowed):
    # a fresh interpreter: POCL reads POCL_MAX_PTHREAD_COUNT when it loads
    result = run("check", "--batch", "1", env={name: value})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{name}='{value}'" in result.stderr and allowed in result.stderr


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit codes: 0 ok" in out and "2 a bad option or environment setting" in out


def test_a_crash_prints_the_python_stack():
    """faulthandler is on in the CLI: a segfault names the line it happened on."""
    code = ("import ctypes, sys; from clconv import cli; "
            "cli.COMMANDS = (); sys.argv = ['clconv']; cli.main(); ctypes.string_at(0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Fatal Python error" in result.stderr and "line 1" in result.stderr


def test_the_crash_handler_leaves_nothing_unclosed():
    """The crash handler's copy of stderr is a bare descriptor: as a file object it was
    reported unclosed when `clconv bench --hold-isa avx2` exited."""
    from clconv.commands.bench import HELD_ISAS, cpu_flags
    held = HELD_ISAS["avx2"]
    if not set(held.flags) <= cpu_flags():
        pytest.skip(f"--hold-isa avx2 needs a CPU with {', '.join(held.flags)}")
    # without the settings it makes itself, which it refuses to find set otherwise
    env = {k: v for k, v in os.environ.items() if k not in held.settings}
    result = subprocess.run(
        [sys.executable, "-m", "clconv.cli", "bench", "--suite", "smoke", "--no-torch",
         "--no-tinygrad", "--hold-isa", "avx2"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" not in result.stderr, result.stderr
