"""The CI tier runner (.ci/lib.sh): a failing tier says why, and the run fails."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_tiers(script, tmp_path, **env):
    """Run bash `script` after sourcing .ci/lib.sh, with its logs in tmp_path."""
    full = f". .ci/lib.sh\n{script}"
    return subprocess.run(["bash", "-c", full], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "CI_LOGS": str(tmp_path),
                                           **env})


def test_a_passing_run_passes_and_prints_each_tiers_time(tmp_path):
    r = run_tiers('run_tier one 30 true\nrun_tier two 30 echo hi\ntier_summary CI', tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "=== tier one passed in" in r.stdout and "=== tier two passed in" in r.stdout
    assert "hi" in (tmp_path / "two.log").read_text()


def test_a_failing_tier_says_why_and_the_later_tiers_still_run(tmp_path):
    script = ("run_tier bad 30 bash -c 'echo FAILED tests/test_x.py::test_y - boom; exit 1'\n"
              "run_tier missing 30 no-such-command-here\n"
              "run_tier later 30 true\n"
              "tier_summary CI")
    r = run_tiers(script, tmp_path)
    assert r.returncode == 1
    out = r.stdout
    assert "=== tier bad FAILED: exit 1: tests failed" in out
    assert "FAILED tests/test_x.py::test_y - boom" in out.split("--- why")[1]
    assert "exit 127: a command was not found" in out
    assert "=== tier later passed" in out
    assert "FAILED tiers: bad missing" in out


def test_a_tier_past_its_limit_is_stopped_and_named(tmp_path):
    r = run_tiers("run_tier slow 1 sleep 20\ntier_summary CI", tmp_path)
    assert r.returncode == 1
    assert "exit 124: timed out" in r.stdout


def test_the_last_test_started_is_reported(tmp_path):
    script = ("run_tier crash 30 bash -c 'echo tests/test_a.py::test_b >> \"$CLCONV_TEST_TRACE\"; "
              "kill -SEGV $$'\ntier_summary CI")
    r = run_tiers(script, tmp_path)
    assert r.returncode == 1
    assert "exit 139: segmentation fault" in r.stdout
    assert "last test started: tests/test_a.py::test_b" in r.stdout


def test_background_tiers_report_when_waited_for(tmp_path):
    script = ("start_tier bg1 30 bash -c 'sleep 1; echo from-bg1'\n"
              "start_tier bg2 30 bash -c 'echo FAILED t::u; exit 1'\n"
              "run_tier fg 30 true\n"
              "wait_tier bg1\nwait_tier bg2\ntier_summary CI")
    r = run_tiers(script, tmp_path)
    assert r.returncode == 1
    out = r.stdout
    assert out.index("=== tier fg passed") < out.index("from-bg1")  # held back until waited
    assert "=== tier bg2 FAILED: exit 1" in out and "FAILED tiers: bg2" in out
    assert "bg1" in out.split("tier times")[1] and "passed" in out.split("tier times")[1]


def test_a_spent_budget_stops_tiers_with_a_reason(tmp_path):
    r = run_tiers("SECONDS=100\nrun_tier late 30 true\ntier_summary CI", tmp_path,
                  CI_DEADLINE="120")
    assert r.returncode == 1
    assert "=== tier late NOT RUN: the run's budget is spent" in r.stdout


@pytest.mark.parametrize("script", [".ci/run", ".ci/pi-tier.sh", ".ci/tier-rusticl.sh",
                                    ".ci/tier-oclgrind.sh", ".ci/pi-prepare.sh"])
def test_ci_scripts_parse(script):
    assert subprocess.run(["bash", "-n", REPO / script]).returncode == 0


def test_the_test_trace_is_written_and_an_unwritable_one_is_ignored(tmp_path):
    """conftest.py appends each test's id to CLCONV_TEST_TRACE; a path that cannot be
    written (a host path seen inside the emulated Pi) must not fail the run."""
    import sys
    test = "tests/test_ci.py::test_ci_scripts_parse"
    for trace, written in ((tmp_path / "trace", True), (tmp_path / "no" / "dir", False)):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            f"{test}[.ci/run]"], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ,
                                             "CLCONV_TEST_TRACE": str(trace)})
        assert r.returncode == 0, r.stdout + r.stderr
        assert trace.exists() == written
        if written:
            assert trace.read_text().strip() == f"{test}[.ci/run]"
