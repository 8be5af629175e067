"""The clconv command line: --help, devices, check, exit codes."""
import subprocess
import sys

import pytest

from clconv.cli import main


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


@pytest.mark.smoke
def test_check_runs_every_op_against_the_reference(capsys):
    assert main(["check", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "device:" in out and "all ops match" in out
    for op in ("conv2d_backward grad_weight", "max_pool2d_backward", "avg_pool2d_backward"):
        assert op in out
    assert "MISMATCH" not in out


def test_check_exits_1_on_a_mismatch(monkeypatch, capsys):
    monkeypatch.setattr("clconv.selfcheck.TOLERANCE", -1.0)  # nothing can pass
    assert main(["check", "--batch", "1"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
